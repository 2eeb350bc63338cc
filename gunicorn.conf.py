"""gunicorn settings for serving `wsgi:app` in production (`gunicorn -c gunicorn.conf.py wsgi:app`).

Worker class gthread: the application is synchronous Flask whose requests spend much of their
time waiting on PostgreSQL; a few threads per worker overlap those waits, and a slow client
holds a thread, not a whole worker. Engine steps are CPU-bound Python, so the real parallelism
comes from processes: one worker per core. gevent or eventlet would need psycopg and the
handbook sandbox's pipes monkey-patched, for no gain on this load.

The scheduler is not started here: run `flask --app wsgi scheduler run` as its own process
(one or more on PostgreSQL). Every value can be overridden from the environment.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# No preload: each worker builds its own database pool and handbook sandbox after the fork.
preload_app = False
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so that memory held by rare large requests is given back.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
accesslog = "-"
errorlog = "-"
# The application sets its own neutral Server header; say nothing of gunicorn's version.
proc_name = "pudong-ops-web"
