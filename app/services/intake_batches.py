"""Batch intake: a source system's batch of alerts stored in a few statements whatever its
size. Retries are answered from one query; plain repeats go in one insert of their alerts and
one update of their cases; new warnings open their cases together (`case_opening`). Anything
that moves an open case's process takes `intake.ingest`, one alert at a time, in the batch's
order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import ARRAY, any_, bindparam, select, text
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.i18n import _l
from app.models import LEVEL_RANK, Alert, ApiKey, Case, MonitoringPoint, PlatformNode, Silence
from app.services import case_opening, partitions
from app.services.errors import Forbidden
from app.services.handbook_data import WarningItem, level_for, recovered
from app.services.intake import (
    AlertIn,
    AlertOutcome,
    dedup_key_of,
    handbook_for,
    ingest,
    item_for,
    new_case_request,
    scenario_node,
)


def one_of(column: Any, values: Iterable[str]) -> Any:
    """`column IN values`; on PostgreSQL as `= ANY` of one array parameter: a statement with
    a placeholder per value is parsed again, and planned again, for every batch."""
    values = list(values)
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


# Alerts partitioned by month (PostgreSQL, migration 0014): the keys also live in their own
# table, whose primary key says at once which of them were seen before (in a storm most are
# new, and no month is read at all) and when, so that each seen alert is read from its own
# month only. One probe per key, whatever the statistics say about the tables (a storm's
# fresh rows have none yet, and a plan from them filtered every key of the source).
_REPLAYS_PARTITIONED = """
SELECT a.id, u.key AS idempotency_key, a.disposition, a.level, a.unknown_point, c.case_no
FROM unnest(CAST(:keys AS varchar[])) AS u(key)
JOIN LATERAL (SELECT s.received_at FROM alert_idempotency_key s
              WHERE s.api_key_id = :key AND s.idempotency_key = u.key LIMIT 1) s ON true
JOIN LATERAL (SELECT al.id, al.disposition, al.level, al.unknown_point, al.case_id
              FROM alert al WHERE al.api_key_id = :key AND al.idempotency_key = u.key
              AND al.received_at = s.received_at LIMIT 1) a ON true
LEFT JOIN warning_case c ON c.id = a.case_id
"""


def _replays(key: ApiKey, idempotency_keys: list[str]) -> dict[str, AlertOutcome]:
    """What earlier requests stored under these idempotency keys, in one query."""
    if not idempotency_keys:
        return {}
    if partitions.is_partitioned(db.session.connection(), "alert"):
        rows = db.session.execute(text(_REPLAYS_PARTITIONED),
                                  {"key": key.id, "keys": idempotency_keys})
    else:
        rows = db.session.execute(
            select(Alert.id, Alert.idempotency_key, Alert.disposition, Alert.level,
                   Alert.unknown_point, Case.case_no)
            .outerjoin(Case, Case.id == Alert.case_id)
            .where(Alert.api_key_id == key.id, Alert.idempotency_key.in_(idempotency_keys)))
    return {row.idempotency_key: AlertOutcome(row.id, row.disposition, row.case_no, row.level,
                                              row.unknown_point, replayed=True)
            for row in rows}


class _OpenCase(NamedTuple):
    """What the batch intake knows of an open case."""

    id: int
    case_no: str
    dedup_key: str
    highest_level: str


def ingest_many(key: ApiKey, batch: list[AlertIn], *, now: datetime) -> list[AlertOutcome]:
    """Ingest a batch in order, with the lookups done once per batch.

    Retries (an idempotency key stored before, by an earlier request or earlier in this batch)
    are answered from one query. The bulk of a storm is written set-wise, with or without
    idempotency keys: plain repeats (same level or lower, not back to normal) in one insert
    of their alerts and one update of their cases, and new warnings opened together (their
    cases, tasks, history and notices in one statement each, see `case_opening.open_cases`).
    Anything that moves an open case's process (an upgrade, back to normal) takes the full
    path of `ingest`, one alert at a time, after what is waiting is stored, so that the
    order of arrival holds.
    """
    for incoming in batch:
        if incoming.scenario not in key.scenarios:
            raise Forbidden(_l("This API key may not report for this scenario."),
                            code="scenario_not_allowed",
                            details={"scenario": [incoming.scenario]})
    handbooks = {s: handbook_for(s) for s in {a.scenario for a in batch}}
    items = [item_for(handbooks[a.scenario], a.indicator) for a in batch]
    codes = {a.point_code for a in batch}
    # point code -> its id: a repeat needs no more of its point (no ORM objects for a storm).
    point_ids: dict[str, int] = dict(db.session.execute(
        select(MonitoringPoint.code, MonitoringPoint.id).where(
            one_of(MonitoringPoint.code, codes), MonitoringPoint.active.is_(True))).tuples().all())
    silenced = {(s.scenario, s.point_code, s.indicator) for s in db.session.scalars(
        select(Silence).where(one_of(Silence.point_code, codes), Silence.starts_at <= now,
                              Silence.ends_at > now, Silence.ended_at.is_(None)))}
    keys = {dedup_key_of(key, a.point_code, i.indicator) for a, i in zip(batch, items,
                                                                        strict=True)}
    open_cases = {row.dedup_key: _OpenCase(*row) for row in db.session.execute(
        select(Case.id, Case.case_no, Case.dedup_key, Case.highest_level).where(
            one_of(Case.dedup_key, keys), Case.status == "open"))}
    replays = _replays(key, sorted({a.idempotency_key for a in batch if a.idempotency_key}))
    seen: dict[str, int] = {}  # idempotency key -> index of its alert in this batch
    outcomes: list[AlertOutcome | None] = [None] * len(batch)
    pending = _Pending(key, batch, items, outcomes, open_cases, now)
    for n, (incoming, item) in enumerate(zip(batch, items, strict=True)):
        retry_of = incoming.idempotency_key
        if retry_of is not None and retry_of in replays:
            outcomes[n] = replays[retry_of]
            continue
        if retry_of is not None and retry_of in seen:
            pending.flush()  # the first one's id is known once it is stored
            first = outcomes[seen[retry_of]]
            assert first is not None
            outcomes[n] = replace(first, replayed=True, step_failed=False, error=None)
            continue
        if retry_of is not None:
            seen[retry_of] = n
        dedup_key = dedup_key_of(key, incoming.point_code, item.indicator)
        if dedup_key in pending.opening:
            pending.flush()  # the case this alert joins is opened first
        level = incoming.level or level_for(item, incoming.value)
        row = open_cases.get(dedup_key)
        quiet = not any(s[0] == incoming.scenario and s[1] == incoming.point_code
                        and s[2] in (None, item.indicator) for s in silenced)
        normal = recovered(item, incoming.value)
        if row is None and quiet and level is not None and not normal:
            pending.open(n, dedup_key, level)
            continue
        plain_repeat = (row is not None and quiet and not normal
                        and LEVEL_RANK.get(level or "", 0)
                        <= LEVEL_RANK.get(row.highest_level, 0))
        if not plain_repeat:
            pending.flush()  # keep the order: earlier alerts are stored before this one
            outcomes[n] = pending.one(n)
            continue
        assert row is not None
        pending.add(n, pending.alert_row(n, dedup_key, level, "grouped", row.id,
                                         point_ids.get(incoming.point_code)))
    pending.flush()
    return [o for o in outcomes if o is not None]


class _Pending:
    """Alerts of a batch waiting to be stored together: plain repeats, and new warnings whose
    cases are opened together."""

    def __init__(self, key: ApiKey, batch: list[AlertIn], items: list[WarningItem],
                 outcomes: list[AlertOutcome | None], open_cases: dict[str, _OpenCase],
                 now: datetime) -> None:
        self.key, self.batch, self.items, self.now = key, batch, items, now
        self.outcomes, self.open_cases = outcomes, open_cases
        self.rows: list[dict[str, Any]] = []
        self.index: list[int] = []
        self.opening: dict[str, tuple[int, str]] = {}  # dedup key -> (index, level)
        self.scenario_nodes: dict[str, PlatformNode] = {}

    def alert_row(self, n: int, dedup_key: str, level: str | None, disposition: str,
                  case_id: int | None, point_id: int | None) -> dict[str, Any]:
        incoming, item = self.batch[n], self.items[n]
        return {
            "api_key_id": self.key.id, "idempotency_key": incoming.idempotency_key,
            "received_at": self.now, "observed_at": incoming.observed_at,
            "source_type": self.key.source_type, "point_code": incoming.point_code,
            "point_id": point_id, "scenario": incoming.scenario, "item_code": item.code,
            "indicator": item.indicator, "value": incoming.value, "unit": item.unit,
            "level": level, "dedup_key": dedup_key, "disposition": disposition,
            "case_id": case_id, "unknown_point": point_id is None, "silence_id": None,
            "payload": incoming.payload or {}}

    def add(self, n: int, row: dict[str, Any]) -> None:
        self.index.append(n)
        self.rows.append(row)

    def open(self, n: int, dedup_key: str, level: str) -> None:
        self.opening[dedup_key] = (n, level)

    def one(self, n: int) -> AlertOutcome:
        """The full path of `ingest` for one alert; what the batch knows of its case follows."""
        incoming = self.batch[n]
        outcome = ingest(self.key, incoming, now=self.now)
        dedup_key = dedup_key_of(self.key, incoming.point_code, self.items[n].indicator)
        if outcome.case_no and outcome.disposition in ("opened", "upgraded", "grouped",
                                                       "back_to_normal"):
            refreshed = db.session.execute(
                select(Case.id, Case.case_no, Case.dedup_key, Case.highest_level).where(
                    Case.case_no == outcome.case_no, Case.status == "open")).first()
            if refreshed is not None:
                self.open_cases[dedup_key] = _OpenCase(*refreshed)
            else:
                self.open_cases.pop(dedup_key, None)
        return outcome

    def flush(self) -> None:
        if not self.rows and not self.opening:
            return
        rows, index, opening = self.rows, self.index, self.opening
        self.rows, self.index, self.opening = [], [], {}
        if not opening and not any(r["idempotency_key"] for r in rows):
            _flush_alerts(rows, index, self.outcomes, self.open_cases, {}, self.now)
            return
        try:
            with db.session.begin_nested():
                self._store(rows, index, opening)
        except IntegrityError:
            # A concurrent request stored one of these keys, or opened one of these cases,
            # a moment ago: one at a time, so that each retry gets the outcome of the request
            # that stored it and each warning joins the case now open.
            for n in sorted([*index, *(n for n, _ in opening.values())]):
                self.outcomes[n] = self.one(n)

    def _store(self, rows: list[dict[str, Any]], index: list[int],
               opening: dict[str, tuple[int, str]]) -> None:
        """Open the new warnings' cases, then store every waiting alert in arrival order."""
        opened: dict[int, Case] = {}  # index in the batch -> the case its alert opened
        if opening:
            wanted = sorted((n, level, dedup_key)
                            for dedup_key, (n, level) in opening.items())
            codes = {self.batch[n].point_code for n, _, _ in wanted}
            points = {p.code: p for p in db.session.scalars(select(MonitoringPoint).where(
                one_of(MonitoringPoint.code, codes), MonitoringPoint.active.is_(True)))}
            requests = [self._request(n, level, dedup_key,
                                      points.get(self.batch[n].point_code))
                        for n, level, dedup_key in wanted]
            for (n, level, _), case in zip(wanted,
                                           case_opening.open_cases(requests, now=self.now),
                                           strict=True):
                opened[n] = case
                self.open_cases[case.dedup_key] = _OpenCase(case.id, case.case_no,
                                                            case.dedup_key, case.highest_level)
                index.append(n)
                rows.append(self.alert_row(n, case.dedup_key, level, "opened", case.id,
                                           case.point_id))
            order = sorted(range(len(index)), key=index.__getitem__)
            index, rows = [index[i] for i in order], [rows[i] for i in order]
        _flush_alerts(rows, index, self.outcomes, self.open_cases, opened, self.now)

    def _request(self, n: int, level: str, dedup_key: str, point: MonitoringPoint | None
                 ) -> case_opening.NewCase:
        incoming = self.batch[n]
        line = self.scenario_nodes.get(incoming.scenario)
        if line is None:
            line = self.scenario_nodes[incoming.scenario] = scenario_node(incoming.scenario)
        return new_case_request(incoming, self.items[n], level, point, line, dedup_key)


def _flush_alerts(rows: list[dict[str, Any]], index: list[int],
                  outcomes: list[AlertOutcome | None], open_cases: dict[str, _OpenCase],
                  opened: dict[int, Case], now: datetime) -> None:
    """Store waiting alerts in one insert, and count the repeats among them into their cases
    in one update (`opened`: the alerts that opened a case, stored a moment ago)."""
    ids = _insert_alerts(rows)
    case_nos = {row.id: row.case_no for row in open_cases.values()}
    updates: dict[int, dict[str, Any]] = {}
    for n, alert_id, row in zip(index, ids, rows, strict=True):
        case = opened.get(n)
        if case is not None:
            outcomes[n] = _opened(alert_id, row, case, now)
            continue
        outcomes[n] = AlertOutcome(alert_id, "grouped", case_nos.get(row["case_id"]),
                                   row["level"], row["unknown_point"])
        update_ = updates.setdefault(row["case_id"], {"case_id": row["case_id"], "count": 0,
                                                      "last_value": row["value"],
                                                      "last_seen": row["observed_at"]})
        update_["count"] += 1
        update_["last_value"] = row["value"]
        update_["last_seen"] = max(update_["last_seen"], row["observed_at"])
    if updates:
        _update_cases(updates)


def _opened(alert_id: int, row: dict[str, Any], case: Case, now: datetime) -> AlertOutcome:
    """The outcome of an alert that opened `case`, saying so when its first step failed."""
    failed = case.failure is not None and case.failure.get("at") == now.isoformat()
    error = None
    if failed:
        from app.services.stuck import summary

        error = summary(case.failure)
    return AlertOutcome(alert_id, "opened", case.case_no, row["level"], row["unknown_point"],
                        step_failed=failed, error=error)


def _update_cases(updates: dict[int, dict[str, Any]]) -> None:
    """Count repeats into their cases: `updates` by case id."""
    from sqlalchemy import Table, bindparam, case, update

    if db.session.get_bind().dialect.name == "postgresql":
        _update_cases_pg(list(updates.values()))
    else:
        table = cast(Table, Case.__table__)
        db.session.connection().execute(
            update(table).where(table.c.id == bindparam("b_id")).values(
                alert_count=table.c.alert_count + bindparam("b_count"),
                last_value=bindparam("b_value", type_=table.c.last_value.type),
                last_seen=case((table.c.last_seen > bindparam(
                    "b_seen", type_=table.c.last_seen.type), table.c.last_seen),
                    else_=bindparam("b_seen", type_=table.c.last_seen.type)),
                state_version=table.c.state_version + 1),
            [{"b_id": u["case_id"], "b_count": u["count"], "b_value": u["last_value"],
              "b_seen": u["last_seen"]} for u in updates.values()])
    # Cases this session already holds have moved on in the database: reload when touched.
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Case) and obj.id in updates:
            db.session.expire(obj)


_LOCK_CASES = "SELECT id FROM warning_case WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
_UPDATE_CASES = (
    "UPDATE warning_case AS c SET alert_count = c.alert_count + v.n, last_value = v.value, "
    "last_seen = GREATEST(c.last_seen, v.seen), state_version = c.state_version + 1 "
    "FROM json_to_recordset(%s::json) AS v(id integer, n integer, value float8, "
    "seen timestamptz) WHERE c.id = v.id")


def _update_cases_pg(updates: list[dict[str, Any]]) -> None:
    """The repeats' cases in two statements whatever their number: their rows locked in id
    order (two batches touching the same cases wait for each other instead of deadlocking),
    then one update from the counts sent as a JSON array."""
    import json

    from app.models.base import utc_text

    conn = db.session.connection()
    conn.exec_driver_sql(_LOCK_CASES, (sorted(u["case_id"] for u in updates),))
    document = json.dumps([{"id": u["case_id"], "n": u["count"], "value": u["last_value"],
                            "seen": utc_text(u["last_seen"])}
                           for u in updates], allow_nan=False)
    conn.exec_driver_sql(_UPDATE_CASES, (document,))


# The columns of a plain repeat's alert row and their PostgreSQL types.
_ALERT_COLUMNS = (
    ("api_key_id", "integer"), ("idempotency_key", "varchar"), ("received_at", "timestamptz"),
    ("observed_at", "timestamptz"), ("source_type", "varchar"), ("point_code", "varchar"),
    ("point_id", "integer"), ("scenario", "varchar"), ("item_code", "varchar"),
    ("indicator", "varchar"), ("value", "float8"), ("unit", "varchar"), ("level", "varchar"),
    ("dedup_key", "varchar"), ("disposition", "varchar"), ("case_id", "integer"),
    ("unknown_point", "boolean"), ("silence_id", "integer"), ("payload", "json"))
_JSON_INSERT = (
    f"INSERT INTO alert ({', '.join(c for c, _ in _ALERT_COLUMNS)}) SELECT "
    + ", ".join(f"(r->>{n})::{t}"
                for n, (_, t) in enumerate(_ALERT_COLUMNS))
    + " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(r, n) ORDER BY n "
    "RETURNING id")


def _insert_alerts(rows: list[dict[str, Any]]) -> list[int]:
    """Insert alert rows and return their ids in the rows' order.

    On PostgreSQL one statement with the rows as one JSON array: SQLAlchemy's bulk insert
    sends a placeholder per value, which the driver parses and binds one by one, and that was
    the largest cost of storing a storm's repeats; `json.dumps` writes the same values in C.
    The ids come from the sequence in the order of the SELECT (the guarantee SQLAlchemy's own
    sorted bulk insert relies on), so sorting them gives the rows' order. Elsewhere
    SQLAlchemy's bulk insert."""
    import json

    from sqlalchemy import insert

    from app.models.base import utc_text

    if db.session.get_bind().dialect.name != "postgresql":
        return list(db.session.scalars(
            insert(Alert).returning(Alert.id, sort_by_parameter_order=True), rows).all())
    # The payload goes as its JSON text, kept as the source wrote it (jsonb would reorder).
    document = json.dumps([[utc_text(row[c]) if t == "timestamptz"
                            else json.dumps(row[c], ensure_ascii=False) if t == "json"
                            else row[c] for c, t in _ALERT_COLUMNS] for row in rows],
                          ensure_ascii=False, allow_nan=False)
    return sorted(db.session.connection().exec_driver_sql(_JSON_INSERT, (document,)).scalars())
