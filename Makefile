# Two entry points do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed-stamp
ASSETS := static/dist/.built-stamp

.PHONY: setup run test lint db seed translations clean i18n browser-deps report-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

translations: $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -d app/translations >/dev/null

# Front-end packages come from npm (static/package-lock.json) and are bundled into static/dist/.
$(ASSETS): static/package.json static/package-lock.json static/build.mjs $(wildcard static/src/*)
	npm ci --prefix static --no-audit --no-fund
	npm run --prefix static build
	touch $(ASSETS)

setup: $(STAMP) translations $(ASSETS)

db: setup
	mkdir -p instance
	$(FLASK) db upgrade

seed: db
	$(FLASK) seed org
	$(FLASK) seed demo
	$(FLASK) seed handbooks
	$(FLASK) seed points
	$(FLASK) seed traffic

run: seed report-deps
	$(FLASK) seed show-logins
	$(FLASK) serve --host 127.0.0.1 --port 5000

# Browser tests drive Debian's Chromium; CJK fonts keep Chinese readable in screenshots.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || ! dpkg -s fonts-wqy-zenhei >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; \
	  else echo "install Debian's chromium and fonts-wqy-zenhei for the browser tests"; fi; \
	fi

# Report PDFs: WeasyPrint draws with Pango, and Chinese needs CJK fonts.
report-deps:
	@if ! dpkg -s libpangoft2-1.0-0 fonts-wqy-zenhei >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpangoft2-1.0-0 fonts-wqy-zenhei >/dev/null; \
	  else echo "install Debian's libpangoft2-1.0-0 and fonts-wqy-zenhei for the report PDFs"; fi; \
	fi

# pytest exits 5 when nothing was collected: not a failure of the build.
test: setup browser-deps report-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$status

lint: setup
	$(BIN)/ruff check app workflows tests benchmarks wsgi.py
	$(BIN)/mypy

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache

# After adding or changing user-visible text: refresh the catalog, then translate the new entries.
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -o app/translations/messages.pot --no-location .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations -l zh --no-fuzzy-matching -w 100
