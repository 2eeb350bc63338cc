"""Feed health (Art 8, 13): silent points and stopped sources open outages that end when data
returns; figures per source; /metrics behind its token; the status page shows the same."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, FeedOutage, MonitoringPoint, Role
from app.services import feed_intake, feeds
from app.services.intake import AlertIn


def _key() -> ApiKey:
    key = db.session.scalar(select(ApiKey))
    assert key is not None
    return key


def test_a_silent_point_opens_an_outage_that_ends_when_data_returns(
        app: Flask, published: None, source_key: str, point: Callable[..., str],
        clock: Any) -> None:
    point("GAS-HB-1", "gas")
    point("GAS-HB-2", "gas", town="town.22")
    with app.app_context():
        for code in ("GAS-HB-1", "GAS-HB-2"):
            db.session.scalar(select(MonitoringPoint).where(
                MonitoringPoint.code == code)).report_interval_s = 600  # type: ignore[union-attr]
        start = clock()
        feed_intake.heartbeat(_key(), ["GAS-HB-1", "GAS-HB-2"], now=start)
        db.session.commit()
        clock.now = start + timedelta(minutes=15)
        feed_intake.heartbeat(_key(), ["GAS-HB-2"], now=clock())
        assert feeds.scan(clock()).opened == 0  # 15 min < 2 x 10 min
        clock.now = start + timedelta(minutes=25)
        assert feeds.scan(clock()).opened == 1
        assert feeds.scan(clock()).opened == 0  # one outage per silence
        silent = feeds.silent_feeds(clock())
        assert [(f.kind, f.code, f.silent_for) for f in silent] == [
            ("point", "GAS-HB-1", timedelta(minutes=25))]
        assert feeds.silent_feeds(clock(), ["/no/such/"]) == []
        assert feeds.silent_summary(clock())["points"] == 1
        db.session.commit()
        clock.now = start + timedelta(minutes=40)
        feed_intake.take_in(_key(), [AlertIn(
            scenario="gas", indicator="ch4_lel", point_code="GAS-HB-1", value=1.0,
            observed_at=clock() - timedelta(minutes=10), idempotency_key="back")], now=clock())
        assert feeds.silent_feeds(clock()) == []
        outage = db.session.scalar(select(FeedOutage))
        assert outage is not None and outage.ended_at == clock()
        figures = {f.source: f for f in feeds.feed_figures(start, clock())}
        iot = figures["IoT"]
        # 40 min, 2 points every 10 min: 8 expected; 3 heartbeats and 1 late reading came.
        assert (iot.readings, iot.heartbeats, iot.late, iot.points) == (1, 3, 1, 2)
        assert iot.completeness == 0.5 and iot.timeliness == 0.0
        # GAS-HB-1 was silent from 0 to 40 min of 2 x 40 point-minutes.
        assert iot.online_rate == 0.5
        rates = {r.key: r for r in feeds.online_rates(start, clock(), by="town")}
        assert rates["town.02"].online_rate == 0.0 and rates["town.22"].online_rate == 1.0


def test_a_source_whose_stream_stops_is_listed(app: Flask, published: None, source_key: str,
                                               clock: Any) -> None:
    with app.app_context():
        feed_intake.heartbeat(_key(), [], now=clock())
        clock.now = clock() + timedelta(minutes=31)
        assert feeds.scan(clock()).opened == 1
        assert [f.kind for f in feeds.silent_feeds(clock())] == ["source"]
        feed_intake.heartbeat(_key(), [], now=clock())
        assert feeds.silent_feeds(clock()) == []


def test_metrics_need_their_token(app_with: Callable[..., Flask], app: Flask,
                                  published: None, gas_case: str) -> None:
    assert app.test_client().get("/metrics").status_code == 404  # no token configured
    other = app_with(METRICS_TOKEN="metrics-token-0123456789")
    client = other.test_client()
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    client.get("/health")
    answer = client.get("/metrics",
                        headers={"Authorization": "Bearer metrics-token-0123456789"})
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert 'ops_alerts_total{disposition="opened"} 1.0' in text
    assert 'ops_cases{state="open"} 1.0' in text
    assert "ops_http_request_duration_seconds_bucket" in text
    assert "ops_timers_due" in text and "ops_silent_feeds" in text


def test_metrics_count_refusals_repeats_workers_and_the_mqtt_lag(
        app_with: Callable[..., Flask], published: None, point: Callable[..., str],
        source_key: str, clock: Any) -> None:
    from app.models import Heartbeat

    point("GAS-MX-1", "gas")
    other = app_with(METRICS_TOKEN="metrics-token-0123456789")
    client = other.test_client()
    auth = {"Authorization": f"Bearer {source_key}"}
    alert = {"scenario": "gas", "indicator": "ch4_lel", "point": "GAS-MX-1", "value": 30.0,
             "observed_at": clock().isoformat()}
    assert client.post("/api/v1/alerts", json=alert, headers=auth).status_code == 201
    assert client.post("/api/v1/alerts", json=alert, headers=auth).status_code == 201
    assert client.post("/api/v1/alerts", json={**alert, "value": "x"},
                       headers=auth).status_code == 422
    with other.app_context():
        db.session.add_all([
            Heartbeat(name="mqtt", beat_at=clock() - timedelta(seconds=4),
                      detail='{"lag_s": 2.5, "queued": 120, "connected": true}'),
            Heartbeat(name="scheduler", beat_at=clock() - timedelta(seconds=30), detail="")])
        db.session.commit()
    text = client.get("/metrics", headers={
        "Authorization": "Bearer metrics-token-0123456789"}).get_data(as_text=True)
    assert 'ops_alerts_total{disposition="grouped"} 1.0' in text
    assert 'ops_alerts_refused_total{status="422"}' in text
    assert 'ops_http_requests_total{method="POST",route="/api/v1/alerts",status="201"}' in text
    assert "ops_mqtt_lag_seconds 2.5" in text and "ops_mqtt_queued 120.0" in text
    assert 'ops_heartbeat_age_seconds{worker="scheduler"} 30.0' in text
    assert 'ops_heartbeat_age_seconds{worker="mqtt"} 4.0' in text
    assert 'ops_db_pool_connections{state="' in text and "ops_cases_stuck 0.0" in text


def test_accuracy_per_source_counts_false_alarms(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], clock: Any) -> None:
    from app.models import Case

    point("GAS-AC-1", "gas")
    point("GAS-AC-2", "gas")
    start = clock()
    real = send("gas", "ch4_lel", 30.0, "GAS-AC-1")["case_no"]
    send("gas", "ch4_lel", 31.0, "GAS-AC-1")
    false = send("gas", "ch4_lel", 30.0, "GAS-AC-2")["case_no"]
    with app.app_context():
        assert feeds.feed_figures(start, clock() + timedelta(hours=1))[0].accuracy == 1.0
        case = db.session.scalar(select(Case).where(Case.case_no == false))
        assert case is not None and real != false
        case.status = "false_alarm"  # as the verification step records a false alarm
        db.session.commit()
        iot = feeds.feed_figures(start, clock() + timedelta(hours=1))[0]
        assert (iot.alerts_in_cases, iot.false_alarms) == (3, 1)
        assert iot.accuracy == 1 - 1 / 3
        # Alerts received outside the period do not count.
        assert feeds.feed_figures(start + timedelta(hours=1),
                                  start + timedelta(hours=2))[0].accuracy is None


def test_the_status_page_shows_the_runtime_figures(as_role: Any, published: None,
                                                   gas_case: str) -> None:
    page = as_role((Role.TECH_ADMIN, "district"), locale="en").client.get("/system/status")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Runtime figures" in text and "Dead letters" in text and "Silent feeds" in text


def test_registering_an_unknown_point_moves_its_alerts_and_open_case(
        app: Flask, published: None, send: Callable[..., dict[str, Any]], clock: Any,
        make_user: Callable[..., Any]) -> None:
    from app.models import AuditRecord, Case, CaseTask, User
    from app.services import org, quality

    outcome = send("gas", "ch4_lel", 30.0, "GAS-NEW-9")
    assert outcome["unknown_point"]
    admin = make_user((Role.BUSINESS_ADMIN, "district"))
    with app.app_context():
        town = org.node_by_code("town.22")
        point = quality.register_point(db.session.get(User, admin["id"]), scenario="gas",
                                       code="GAS-NEW-9", name="新测点", node_id=town.id,
                                       lat=31.2, lon=121.6, now=clock())
        case = db.session.scalar(select(Case).where(Case.case_no == outcome["case_no"]))
        assert case is not None
        assert (case.node_id, case.point_id, case.scope_path) == (town.id, point.id, town.path)
        assert {t.scope_path for t in db.session.scalars(
            select(CaseTask).where(CaseTask.case_id == case.id))} == {town.path}
        record = db.session.scalar(select(AuditRecord).where(
            AuditRecord.action == "point.register"))
        assert record is not None and record.after["cases_moved"] == [case.case_no]
        assert record.after["alerts_moved"] == 1


def test_a_key_limited_to_towns_reports_only_their_points_and_sends_heartbeats(
        app: Flask, published: None, point: Callable[..., str], clock: Any,
        make_user: Callable[..., Any]) -> None:
    from app.models import User
    from app.services import api_keys

    point("GAS-T-1", "gas", town="town.02")
    point("GAS-T-2", "gas", town="town.22")
    admin = make_user((Role.TECH_ADMIN, "industry.construction"))
    with app.app_context():
        actor = db.session.get(User, admin["id"])
        assert actor is not None
        try:
            api_keys.issue(actor, name="x", source_type="iot", scenarios=["gas"], now=clock(),
                           known_scenarios={"gas"}, node_codes=["district"])
        except Exception as exc:  # noqa: BLE001 - the message is what is checked
            assert "node_codes" in getattr(exc, "details", {})
        else:
            raise AssertionError("a non-town node was accepted")
        secret = api_keys.issue(actor, name="town02", source_type="iot", scenarios=["gas"],
                                now=clock(), known_scenarios={"gas"},
                                node_codes=["town.02"]).secret
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"scenario": "gas", "indicator": "ch4_lel", "value": 30.0,
            "observed_at": clock().isoformat()}
    refused = client.post("/api/v1/alerts", json={**body, "point": "GAS-T-2"},
                          headers=headers)
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "point_not_allowed"
    assert client.post("/api/v1/alerts", json={**body, "point": "GAS-T-1"},
                       headers=headers).status_code == 201
    beat = client.post("/api/v1/heartbeats", json={"points": ["GAS-T-1"]}, headers=headers)
    assert beat.status_code == 202
    assert client.post("/api/v1/heartbeats", json={"points": [3]},
                       headers=headers).status_code == 422
    # A heartbeat speaks for the key's own towns only: it would end another town's outage.
    outside = client.post("/api/v1/heartbeats", json={"points": ["GAS-T-1", "GAS-T-2"]},
                          headers=headers)
    assert outside.status_code == 403 and outside.get_json()["code"] == "point_not_allowed"
    assert outside.get_json()["details"]["point"] == ["GAS-T-2"]
    with app.app_context():
        from app.models import FeedTally

        tally = db.session.scalar(select(FeedTally))
        assert tally is not None and (tally.readings, tally.heartbeats) == (1, 1)


def test_an_outage_opens_a_technical_case_that_closes_when_data_returns(
        app: Flask, published: None, source_key: str, point: Callable[..., str],
        clock: Any) -> None:
    from app.models import Case, CaseTask

    point("GAS-OC-1", "gas")
    with app.app_context():
        found = db.session.scalar(select(MonitoringPoint).where(
            MonitoringPoint.code == "GAS-OC-1"))
        assert found is not None
        found.report_interval_s = 300
        start = clock()
        feed_intake.heartbeat(_key(), ["GAS-OC-1"], now=start)
        clock.now = start + timedelta(minutes=11)
        assert feeds.scan(clock()).opened == 1
        outage = db.session.scalar(select(FeedOutage))
        assert outage is not None and outage.case_id is not None
        case = db.session.get(Case, outage.case_id)
        assert case is not None and case.scenario == "feed_outage" and case.status == "open"
        assert case.case_no.startswith("YW-")
        [task] = db.session.scalars(select(CaseTask).where(CaseTask.case_id == case.id,
                                                           CaseTask.status == "ready"))
        assert task.role == "tech_admin" and task.element_id == "Activity_repair"
        db.session.commit()
        clock.now = start + timedelta(minutes=20)
        feed_intake.heartbeat(_key(), ["GAS-OC-1"], now=clock())
        db.session.commit()
        case = db.session.get(Case, outage.case_id)
        assert case is not None and case.status == "closed" and case.outcome == "data_returned"
        assert case.closed_at == clock()


def test_reports_carry_the_sensing_figures_of_their_sources(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], clock: Any, as_role: Any) -> None:
    """Art 8 in the reports: each source's completeness, timeliness, accuracy and online rate
    for the district and for the scenarios it reports, not for a town."""
    from app.models import PlatformNode
    from app.services import org, report_export, reports
    from app.services.figures import Period, Scope

    point("GAS-RP-1", "gas")
    send("gas", "ch4_lel", 30.0, "GAS-RP-1")
    with app.app_context():
        period = Period.parse(None, now=clock())
        later = clock() + timedelta(hours=1)

        def feeds_of(code: str) -> list[dict[str, Any]]:
            node = db.session.scalar(select(PlatformNode).where(PlatformNode.code == code))
            assert node is not None
            return reports.compose(Scope.of_node(node), period, now=later)["feeds"]

        district = feeds_of("district")
        assert [(f["source"], f["accuracy"]) for f in district] == [("IoT", 1.0)]
        assert feeds_of("scenario.gas") == district
        key = db.session.scalar(select(ApiKey))
        assert key is not None
        key.scenarios = ["gas"]  # a source reporting for gas alone
        db.session.flush()
        assert feeds_of("scenario.elevator") == []
        assert feeds_of("scenario.gas") == district
        assert feeds_of("town.02") == []
        content = reports.compose(Scope.of_node(org.node_by_code("district")), period, now=later)
        table = next(t for t in report_export.tables(content, {})
                     if t.title in ("感知数据质量（第八条）", "Sensing data quality (Art 8)"))
        assert table.rows == [["IoT", 0, "—", "—", "100.0%", "—"]]
    page = as_role((Role.DEPARTMENT_HEAD, "district"), locale="en").text("/reports/")
    assert 'id="feed-quality"' in page and "IoT" in page.split('id="feed-quality"')[1]
