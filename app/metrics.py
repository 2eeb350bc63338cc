"""GET /metrics in the Prometheus text format (Art 13).

Requests are counted per process; with PROMETHEUS_MULTIPROC_DIR set (gunicorn), the
client library's multiprocess collector adds up every worker. Everything else (alerts,
cases, timers, heartbeats, MQTT lag, dead letters, silent feeds) is read from the database at
scrape time, so every worker answers the same. No METRICS_TOKEN set: 404; a wrong or
missing bearer token: 403.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

bp = Blueprint("metrics", __name__)

REQUESTS = CollectorRegistry(auto_describe=True)
REQUEST_COUNT = Counter("ops_http_requests", "HTTP requests by route, method and status",
                        ["route", "method", "status"], registry=REQUESTS)
REQUEST_SECONDS = Histogram("ops_http_request_duration_seconds", "HTTP request latency",
                            ["route", "method"], registry=REQUESTS,
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
ALERTS_REFUSED = Counter("ops_alerts_refused", "alert requests refused (4xx) by the intake API",
                         ["status"], registry=REQUESTS)


class DatabaseCollector(Collector):
    """Figures read from the database at scrape time."""

    def collect(self) -> Iterator[Any]:
        from app.services.runtime_metrics import collect

        figures = collect(current_app.extensions["clock"]())
        alerts = CounterMetricFamily("ops_alerts", "alerts received, by what became of them",
                                     labels=["disposition"])
        for disposition, n in sorted(figures.alerts_by_disposition.items()):
            alerts.add_metric([disposition], n)
        yield alerts
        cases = GaugeMetricFamily("ops_cases", "cases by state", labels=["state"])
        for state, n in sorted(figures.cases_by_state.items()):
            cases.add_metric([state], n)
        yield cases
        yield GaugeMetricFamily("ops_cases_stuck", "cases whose step failed",
                                value=figures.stuck_cases)
        yield GaugeMetricFamily("ops_timers_due", "open cases with a timer due",
                                value=figures.timers_due)
        yield GaugeMetricFamily("ops_timers_late", "timers due for more than a minute",
                                value=figures.timers_late)
        beats = GaugeMetricFamily("ops_heartbeat_age_seconds",
                                  "seconds since a background worker last proved alive",
                                  labels=["worker"])
        for name, age in sorted(figures.heartbeat_age_s.items()):
            beats.add_metric([name], age)
        yield beats
        if figures.mqtt_lag_s is not None:
            yield GaugeMetricFamily("ops_mqtt_lag_seconds",
                                    "age of the oldest MQTT message not yet stored",
                                    value=figures.mqtt_lag_s)
            yield GaugeMetricFamily("ops_mqtt_queued", "MQTT messages received, not yet stored",
                                    value=figures.mqtt_queued or 0)
        yield CounterMetricFamily("ops_dead_letters", "feed messages refused and kept",
                                  value=figures.dead_letters)
        silent = GaugeMetricFamily("ops_silent_feeds", "points and sources silent now",
                                   labels=["kind"])
        silent.add_metric(["point"], figures.silent_points)
        silent.add_metric(["source"], figures.silent_sources)
        yield silent
        pool = GaugeMetricFamily("ops_db_pool_connections", "database connection pool",
                                 labels=["state"])
        for state, n in sorted(figures.pool.items()):
            pool.add_metric([state], n)
        yield pool


def _request_registry() -> CollectorRegistry:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REQUESTS
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


@bp.get("/metrics")
def metrics() -> Response:
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "")
    if not (given.startswith("Bearer ")
            and hmac.compare_digest(given[7:].strip().encode(), token.encode())):
        abort(403)
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    body = generate_latest(_request_registry()) + generate_latest(registry)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def install_metrics(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.before_request
    def _started() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        REQUEST_COUNT.labels(rule, request.method, str(response.status_code)).inc()
        if started is not None:
            REQUEST_SECONDS.labels(rule, request.method).observe(time.perf_counter() - started)
        if request.endpoint == "api.alerts.receive_alerts" and 400 <= response.status_code < 500:
            ALERTS_REFUSED.labels(str(response.status_code)).inc()
        return response
