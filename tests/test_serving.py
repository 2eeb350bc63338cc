"""What the server gives away: no software versions in the Server header, no source maps
built or served, and nothing from static/ beyond what the pages load."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app.cli import dev_server

STATIC = Path(__file__).resolve().parent.parent / "static"


@pytest.fixture
def served(app: Flask) -> Iterator[int]:
    """The application behind the server `flask serve` runs, on a free port."""
    server = dev_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _get(port: int, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_the_server_header_names_no_versions(served: int) -> None:
    for path in ("/login", "/api/v1/nothing-here", "/static/css/app.css"):
        server = _get(served, path).getheader("Server")
        assert server == "pudong-ops", (path, server)


def test_no_source_maps_are_built() -> None:
    dist = STATIC / "dist"
    assert (dist / "designer.js").exists(), "build the front end first (make setup)"
    assert sorted(dist.rglob("*.map")) == []
    for bundle in [*dist.rglob("*.js"), *dist.rglob("*.css")]:
        assert "sourceMappingURL" not in bundle.read_text(encoding="utf-8"), bundle.name


@pytest.mark.parametrize("path", [
    "/static/dist/designer.js.map",
    "/static/dist/viewer.css.map",
    "/static/node_modules/bpmn-js/package.json",
    "/static/node_modules/htmx.org/dist/htmx.min.js",
    "/static/src/designer.js",
    "/static/package.json",
    "/static/build.mjs",
    "/static/css/../package.json",
    "/static/dist/../node_modules/bpmn-js/package.json",
])
def test_only_what_pages_load_is_served_from_static(client, path: str) -> None:
    response = client.get(path)
    response.close()
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/static/css/app.css", "/static/dist/designer.js",
                                  "/static/dist/viewer.css"])
def test_page_assets_are_served(client, path: str) -> None:
    response = client.get(path)
    response.close()
    assert response.status_code == 200


def test_a_second_scheduler_on_one_sqlite_file_refuses_to_start(app: Flask) -> None:
    from app.extensions import db
    from app.jobs import SchedulerRunning, single_scheduler

    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            assert single_scheduler(app) is None  # PostgreSQL: several schedulers share work
            return
        first = single_scheduler(app)
        assert first is not None
        try:
            with pytest.raises(SchedulerRunning):
                single_scheduler(app)
        finally:
            first.close()
        again = single_scheduler(app)  # the first one stopped: a new one may start
        assert again is not None
        again.close()
