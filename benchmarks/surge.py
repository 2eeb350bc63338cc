"""A typhoon surge over HTTP: gunicorn web workers and two schedulers on PostgreSQL, loopback.

Run from the repository root (PostgreSQL needed; a database `ops_bench_surge` is created and
dropped for each layout): BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
python benchmarks/surge.py

For each layout (4 gunicorn workers, then 1; always 2 `flask scheduler run` processes):
- rain gauges over all 36 towns; cases whose first timer falls due during the run are opened
  beforehand, so the schedulers fire timers while the web workers take the surge;
- several sender threads post batches of flood alerts, every alert with an idempotency key, at
  SURGE_FACTOR x the day's peak rate (open loop: a batch goes out at its time, whatever the
  previous answer), for BENCH_SECONDS; some batches are sent twice (a client retrying);
- then a saturation phase: the same senders post as fast as the server answers, which gives
  the layout's capacity; the ratio of capacities is the scaling from 1 to 4 workers.
Printed: alerts/s, request latency p50/p95/p99, alerts lost (answered 2xx but not stored, or
never answered 2xx), alerts stored twice, and timer lateness (fired minus due) under load.

The day's peak (BENCH_DAY_PEAK alerts/s, default 5) is an assumption, not a measurement: about
20,000 monitoring points of which a few hundred report a reading above a threshold in the
busiest minute of an ordinary day. Change it to the real figure when the platform has one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from bench_db import drop_database, scratch_database  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Alert, ApiKey, Case, CaseEvent, MonitoringPoint, User  # noqa: E402
from app.services import api_keys, demo, org  # noqa: E402
from app.services.intake import AlertIn  # noqa: E402
from app.services.intake_batches import ingest_many  # noqa: E402

DB_NAME = "ops_bench_surge"
DAY_PEAK = float(os.environ.get("BENCH_DAY_PEAK", "5"))
SURGE_FACTOR = float(os.environ.get("BENCH_SURGE_FACTOR", "20"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "40"))
SATURATE_SECONDS = float(os.environ.get("BENCH_SATURATE_SECONDS", "20"))
SENDERS = int(os.environ.get("BENCH_SENDERS", "6"))
BATCH = int(os.environ.get("BENCH_BATCH", "25"))
GAUGES = int(os.environ.get("BENCH_GAUGES", "600"))
STARTUP_SECONDS = 30
# 1: every gauge has its open case before the surge (the hour after the first wave), so the
# surge is repeats and upgrades; 0: the surge opens the cases (the first wave itself).
PREOPEN = os.environ.get("BENCH_PREOPEN", "0") == "1"
TIMER_CASES = int(os.environ.get("BENCH_TIMER_CASES", "60"))
SECRET = "surge-secret-0123456789abcdef"



def prepare(url: str) -> tuple[str, datetime, list[datetime]]:
    """Schema, organisation, published handbooks, gauges, an API key, and cases whose first
    timer falls due during the run. Returns the key's secret, the run's start (leaving time
    for the processes to start) and those due times."""
    opened_at = [datetime.now(UTC)]
    app = create_app(DATABASE_URL=url, SECRET_KEY=SECRET, clock=lambda: opened_at[0])
    with app.app_context():
        upgrade()
        org.load_org()
        demo.load_demo_accounts(now=opened_at[0])
        demo.publish_demo_handbooks(now=opened_at[0])
        db.session.add_all([MonitoringPoint(
            code=f"RG-{n:05d}", name=f"雨量站{n}", scenario="flood_typhoon",
            node=org.node_by_code(f"town.{n % 36 + 1:02d}")) for n in range(GAUGES)])
        db.session.add_all([MonitoringPoint(
            code=f"TM-{n:05d}", name=f"积水点{n}", scenario="flood_typhoon",
            node=org.node_by_code(f"town.{n % 36 + 1:02d}")) for n in range(TIMER_CASES)])
        issuer = db.session.scalar(sa.select(User).where(User.username == "sysadmin"))
        secret = api_keys.issue(issuer, name="surge", source_type="iot",
                                scenarios=["flood_typhoon"], now=opened_at[0],
                                known_scenarios={"flood_typhoon"}).secret
        db.session.commit()
        key = db.session.scalar(sa.select(ApiKey))
        # One probe case tells how long after opening its first timer is due.
        ingest_many(key, [AlertIn("flood_typhoon", "rainfall_1h_mm", "TM-00000", 60.0,
                                  opened_at[0])], now=opened_at[0])
        probe = db.session.scalar(sa.select(Case))
        assert probe is not None and probe.next_timer_at is not None
        delay = probe.next_timer_at - probe.opened_at
        db.session.commit()
        if PREOPEN:
            for first in range(0, GAUGES, 100):
                ingest_many(key, [AlertIn("flood_typhoon", "rainfall_1h_mm", f"RG-{n:05d}",
                                          55.0, opened_at[0])
                                  for n in range(first, min(first + 100, GAUGES))],
                            now=opened_at[0])
                db.session.commit()
        dues = []
        run_start = datetime.now(UTC) + timedelta(seconds=STARTUP_SECONDS)
        for n in range(1, TIMER_CASES):
            due = run_start + timedelta(seconds=SECONDS * n / TIMER_CASES)
            opened_at[0] = due - delay
            ingest_many(key, [AlertIn("flood_typhoon", "rainfall_1h_mm", f"TM-{n:05d}", 60.0,
                                      opened_at[0])], now=opened_at[0])
            dues.append(due)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return secret, run_start, dues


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_processes(url: str, workers: int, port: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET, "WEB_CONCURRENCY":
           str(workers), "GUNICORN_BIND": f"127.0.0.1:{port}", "TIMER_POLL_SECONDS": "0.5",
           "RATE_LIMIT_ALERTS": "100000/second", "GUNICORN_MAX_REQUESTS": "0"}
    bin_dir = Path(sys.executable).parent
    web = subprocess.Popen([str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py",
                            "--access-logfile", "/dev/null", "wsgi:app"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    schedulers = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler",
                                    "run"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL) for _ in range(2)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                break
        except OSError:
            time.sleep(0.3)
    return [web, *schedulers]


def post(port: int, secret: str, alerts: list[dict[str, Any]]) -> tuple[int, float]:
    body = json.dumps({"alerts": alerts}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/alerts", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"})
    tick = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            answer.read()
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except OSError:
        status = 0
    return status, time.perf_counter() - tick


class Senders:
    """Sender threads sharing one schedule of batches; records what was answered 2xx."""

    def __init__(self, port: int, secret: str) -> None:
        self.port, self.secret = port, secret
        self.lock = threading.Lock()
        self.sequence = 0
        self.latencies: list[float] = []
        self.sent_keys: set[str] = set()
        self.stored_keys: set[str] = set()
        self.failed = 0

    def batch(self) -> list[dict[str, Any]]:
        with self.lock:
            first = self.sequence
            self.sequence += BATCH
        now = datetime.now(UTC).isoformat()
        alerts = []
        for n in range(first, first + BATCH):
            gauge = (n * 7919) % GAUGES
            # Mostly heavy rain on gauges already alerting, some rising to a higher level.
            value = 60.0 + (n % 50) * (0.1 if n % 97 else 1.0)
            alerts.append({"scenario": "flood_typhoon", "indicator": "rainfall_1h_mm",
                           "point": f"RG-{gauge:05d}", "value": value, "observed_at": now,
                           "idempotency_key": f"surge-{n}"})
        return alerts

    def send(self, alerts: list[dict[str, Any]]) -> None:
        keys = {a["idempotency_key"] for a in alerts}
        status, spent = post(self.port, self.secret, alerts)
        if status in (0, 500, 502, 503):  # not stored for sure: the client retries once
            status, spent = post(self.port, self.secret, alerts)
        with self.lock:
            self.latencies.append(spent)
            self.sent_keys |= keys
            if 200 <= status < 300:
                self.stored_keys |= keys
            else:
                self.failed += 1

    def run(self, rate: float | None, seconds: float) -> float:
        """Send for `seconds` at `rate` alerts/s (None: as fast as answers come)."""
        start = time.monotonic()
        interval = BATCH / rate * SENDERS if rate else 0.0

        def sender(index: int) -> None:
            due = start + (interval * index / SENDERS if rate else 0.0)
            count = 0
            while time.monotonic() - start < seconds:
                if rate:
                    pause = due - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    due += interval
                alerts = self.batch()
                self.send(alerts)
                count += 1
                if count % 20 == 0:
                    self.send(alerts)  # a retry of a batch already answered

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - start


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * p) - 1))] if ordered else 0.0


def layout(base: str, workers: int) -> dict[str, Any]:
    admin, url = scratch_database(base, DB_NAME)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        secret, run_start, dues = prepare(url)
        port = free_port()
        processes = start_processes(url, workers, port)
        wait = (run_start - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(wait)
        senders = Senders(port, secret)
        rate = DAY_PEAK * SURGE_FACTOR
        elapsed = senders.run(rate, SECONDS)
        surge = {"latencies": list(senders.latencies), "sent": len(senders.sent_keys),
                 "elapsed": elapsed}
        time.sleep(3)  # the last timers of the window
        saturated = Senders(port, secret)
        saturated.sequence = senders.sequence
        capacity_elapsed = saturated.run(None, SATURATE_SECONDS)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            stored = set(conn.scalars(sa.select(Alert.idempotency_key).where(
                Alert.idempotency_key.like("surge-%"))))
            rows = conn.scalar(sa.select(sa.func.count()).select_from(Alert).where(
                Alert.idempotency_key.like("surge-%")))
            fired = conn.execute(sa.select(CaseEvent.case_id, sa.func.min(CaseEvent.at)).where(
                CaseEvent.kind == "input", CaseEvent.data["kind"].as_string() == "timers")
                .group_by(CaseEvent.case_id)).all()
            due_of = dict(conn.execute(sa.select(Case.id, Case.opened_at).where(
                Case.point_code.like("TM-%"), Case.point_code != "TM-00000")).all())
        engine.dispose()
        answered = senders.stored_keys | saturated.stored_keys
        sent = senders.sent_keys | saturated.sent_keys
        delay = dues[0] - min(due_of.values()) if due_of else timedelta(0)
        lateness = [(at - (due_of[case_id] + delay)).total_seconds()
                    for case_id, at in fired if case_id in due_of]
        return {
            "workers": workers,
            "surge_rate": len(surge["latencies"]) * BATCH / surge["elapsed"],
            "target_rate": rate,
            "latencies": surge["latencies"],
            "capacity": len(saturated.latencies) * BATCH / capacity_elapsed,
            "capacity_latencies": saturated.latencies,
            "lost": len(answered - stored),
            "unanswered": len(sent - answered),
            "duplicated": rows - len(stored),
            "failed_requests": senders.failed + saturated.failed,
            "timers_due": len(dues), "timers_fired": len(lateness),
            "lateness": lateness,
        }
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        drop_database(admin, DB_NAME)


def report(result: dict[str, Any]) -> None:
    lat = [x * 1000 for x in result["latencies"]]
    cap = [x * 1000 for x in result["capacity_latencies"]]
    late = result["lateness"]
    print(f"{result['workers']} worker(s), 2 schedulers:")
    print(f"  surge      offered {result['target_rate']:.0f} alerts/s, taken "
          f"{result['surge_rate']:.1f} alerts/s; per {BATCH}-alert request p50 "
          f"{percentile(lat, 0.5):.0f} ms p95 {percentile(lat, 0.95):.0f} ms "
          f"p99 {percentile(lat, 0.99):.0f} ms")
    print(f"  capacity   {result['capacity']:.1f} alerts/s flat out (p95 "
          f"{percentile(cap, 0.95):.0f} ms per request)")
    print(f"  lost {result['lost']}  duplicated {result['duplicated']}  never answered 2xx "
          f"{result['unanswered']}  failed requests {result['failed_requests']}")
    if late:
        print(f"  timers     {result['timers_fired']}/{result['timers_due']} fired; lateness "
              f"p50 {statistics.median(late):.2f} s p99 {percentile(late, 0.99):.2f} s "
              f"max {max(late):.2f} s (poll 0.5 s)")
    else:
        print(f"  timers     0/{result['timers_due']} fired")


def main() -> None:
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") \
        or "postgresql://postgres@127.0.0.1:5432/test"
    print(f"typhoon surge ({'cases open before' if PREOPEN else 'opening the cases'}, "
          f"{GAUGES} gauges): {SURGE_FACTOR:.0f} x a day's peak of {DAY_PEAK:g} alerts/s, "
          f"{SENDERS} senders, {BATCH} alerts per request, {SECONDS:.0f} s + "
          f"{SATURATE_SECONDS:.0f} s flat out, {os.cpu_count()} cores")
    results = [layout(base, 4), layout(base, 1)]
    for result in results:
        report(result)
    four, one = results
    print(f"scaling 1 -> 4 workers: capacity x{four['capacity'] / one['capacity']:.2f}")


if __name__ == "__main__":
    main()
