"""Case numbers people can read and say on the phone: scenario prefix, year, sequence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import CaseNumber
from app.timezone import local_zone

PREFIXES = {
    "flood_typhoon": "FX", "rain_snow_ice": "YX", "industry_trade": "GM",
    "hazardous_chemicals": "WH", "gas": "RQ", "bridge": "QL", "utility_tunnel": "GL",
    "construction_site": "JZ", "water": "GP", "forest_fire": "SL", "oil_gas_pipeline": "YQ",
    "traffic": "JT", "crowd": "KL", "elevator": "DT", "power_supply": "GD",
    "warning_publication": "QX", "feed_outage": "YW",
}


def next_case_number(scenario: str, now: datetime) -> str:
    """`RQ-2026-000123`. The counter row is locked, so two workers never share a number."""
    return next_case_numbers(scenario, now, 1)[0]


def next_case_numbers(scenario: str, now: datetime, count: int) -> list[str]:
    """`count` consecutive numbers of one scenario, taken with one lock of the counter row
    (the new cases of a batch)."""
    prefix = PREFIXES.get(scenario, scenario[:2].upper())
    year = now.astimezone(local_zone()).year
    query = select(CaseNumber).where(CaseNumber.prefix == prefix, CaseNumber.year == year) \
        .with_for_update()
    row = db.session.scalar(query)
    if row is None:
        try:
            with db.session.begin_nested():
                db.session.add(CaseNumber(prefix=prefix, year=year, last=0))
        except IntegrityError:
            pass  # another worker created the year's counter first
        row = db.session.scalar(query)
        assert row is not None
    first = row.last + 1
    row.last += count
    db.session.flush()
    return [f"{prefix}-{year}-{n:06d}" for n in range(first, first + count)]
