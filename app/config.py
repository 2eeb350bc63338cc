"""Every setting of the application, read once from the environment and validated."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"


class ConfigError(ValueError):
    """A setting has a value the application cannot run with."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    check: Callable[[Any], str | None] | None = None
    help: str = ""


def _optional_url(value: str) -> str | None:
    if value == "" or value.startswith(("http://", "https://")):
        return None
    return "must be an http:// or https:// URL"


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected one of true/false, 1/0, yes/no, on/off")


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _database_url(raw: str) -> str:
    url = raw.strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; SQLAlchemy would otherwise pick psycopg2.
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if not (url.startswith("sqlite:") or url.startswith("postgresql+psycopg://")):
        raise ValueError("only sqlite:/// and postgresql:// URLs are supported")
    return url


def _optional_database_url(raw: str) -> str:
    return _database_url(raw) if raw.strip() else ""


def _locale(raw: str) -> str:
    value = raw.strip()
    if value not in SUPPORTED_LOCALES:
        raise ValueError(f"supported locales are {', '.join(SUPPORTED_LOCALES)}")
    return value


def _time_zone(raw: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = raw.strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA time zone name such as Asia/Shanghai") from None
    return value


def _rate_limits(raw: str) -> str:
    """A limit in the `limits` notation, several separated by ";" ("100/second;3000/minute")."""
    from limits import parse_many

    value = raw.strip()
    try:
        parse_many(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; write e.g. 10/minute or 100/second;3000/minute") from None
    return value


def _redis_url(raw: str) -> str:
    url = raw.strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected redis://host:port/db, rediss://… or unix://…, or empty")
    return url


SUPPORTED_LOCALES = ("zh_CN", "en")
REPORTS_BIND = "reports"

SETTINGS: tuple[Setting, ...] = (
    Setting("SECRET_KEY", None, str,
            lambda v: None if v is None or len(v) >= 16 else "must be at least 16 characters",
            "signs sessions and CSRF tokens; generated per process when unset"),
    Setting("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'ops.db'}", _database_url,
            help="SQLite file (embedded default) or PostgreSQL"),
    # MLPS level 3 keeps logs at least six months; 0 keeps every month.
    Setting("LOG_RETENTION_MONTHS", 0, int,
            lambda v: None if v == 0 or v >= 6 else "must be 0 (keep all) or at least 6",
            "months of alerts and case history kept in their monthly partitions (PostgreSQL)"),
    Setting("REPORTS_DATABASE_URL", "", _optional_database_url,
            help="a read replica that reports and figures read from; empty: the primary"),
    Setting("DEFAULT_LOCALE", "zh_CN", _locale),
    # The platform's time zone: pages, forms, case numbers' years and reports read it.
    Setting("TIMEZONE", "Asia/Shanghai", _time_zone),
    Setting("SESSION_IDLE_MINUTES", 30, int, _positive,
            "a session unused for this long logs out"),
    Setting("SESSION_ABSOLUTE_HOURS", 12, int, _positive,
            "a session ends this long after its log-in, however busy it is"),
    Setting("PASSWORD_MIN_LENGTH", 10, int,
            lambda v: None if v >= 8 else "must be at least 8"),
    Setting("PASSWORD_MAX_AGE_DAYS", 90, int, _positive),
    Setting("LOGIN_MAX_FAILURES", 5, int, _positive,
            "failed log-ins in a row before the account is locked"),
    Setting("LOGIN_LOCK_MINUTES", 15, int, _positive),
    Setting("SCHEDULER_HEARTBEAT_SECONDS", 30, int, _positive),
    Setting("SESSION_COOKIE_SECURE", False, _bool),
    Setting("NOTIFY_WEBHOOK_URL", "", str,
            _optional_url,
            "where reminders and escalations are also POSTed as JSON; empty: in-app only"),
    Setting("NOTIFY_WECOM_URL", "", str,
            _optional_url,
            "a WeCom (企业微信) group robot's webhook URL; notices go there as markdown"),
    Setting("NOTIFY_DINGTALK_URL", "", str,
            _optional_url,
            "a DingTalk (钉钉) group robot's webhook URL; notices go there as markdown"),
    Setting("NOTIFY_DINGTALK_SECRET", "", str, None,
            "the DingTalk robot's signing secret (加签); empty: unsigned"),
    Setting("TIMER_POLL_SECONDS", 0.5, float, _positive,
            "how often the scheduler looks for due timers"),
    Setting("MAX_ALERT_BATCH", 500, int, _positive),
    Setting("MAX_UPLOAD_MB", 32, int, _positive,
            "largest request body accepted anywhere (pages and API), in megabytes"),
    Setting("REDIS_URL", "", _redis_url,
            help="where rate limits are counted, shared by every worker; empty: in memory, "
                 "per process"),
    # A source system normally sends a few requests a second, batches of up to MAX_ALERT_BATCH;
    # a typhoon day is about ten times that. Only a runaway client meets this.
    Setting("RATE_LIMIT_ALERTS", "100/second;3000/minute", _rate_limits,
            help="alert intake requests per API key"),
    # Only refused log-ins count, so an office behind one address can log in at nine.
    Setting("RATE_LIMIT_LOGIN_IP", "60/minute;600/hour", _rate_limits,
            help="refused log-ins per client address"),
    Setting("RATE_LIMIT_LOGIN_USER", "10/minute", _rate_limits,
            help="refused log-ins per user name"),
    # Feed health (Art 8): when a reading counts as late, a point or a source as silent.
    Setting("FEED_LATE_SECONDS", 300, int, _positive,
            help="a reading received this long after its observation counts as late"),
    Setting("FEED_SILENT_FACTOR", 2.0, float, _positive,
            help="a point is silent after this many of its reporting intervals without data"),
    Setting("FEED_SOURCE_SILENT_MINUTES", 30, int, _positive,
            help="a source system that sent nothing for this long has stopped"),
    # MQTT intake (`flask intake mqtt`).
    Setting("MQTT_HOST", "127.0.0.1", str, lambda v: None if v.strip() else "must not be empty"),
    Setting("MQTT_PORT", 1883, int, lambda v: None if 0 < v < 65536 else "must be a TCP port"),
    Setting("MQTT_TLS", False, _bool, help="connect with TLS (MQTT_CA_FILE to trust a CA)"),
    Setting("MQTT_CA_FILE", "", str),
    Setting("MQTT_USERNAME", "", str),
    Setting("MQTT_PASSWORD", "", str),
    Setting("MQTT_CLIENT_ID", "pudong-ops-intake", str,
            lambda v: None if 0 < len(v.strip()) <= 64 else "must be 1-64 characters"),
    Setting("MQTT_TOPIC_ROOT", "pudong", str,
            lambda v: None if v and not set(v) & set("+#/") else "one topic level, no + # /",
            "topics are ROOT/<API key prefix>/alerts and ROOT/<API key prefix>/heartbeat"),
    Setting("MQTT_BATCH", 500, int, _positive,
            help="messages taken in per transaction at most"),
    Setting("MQTT_RECEIVE_MAXIMUM", 65535, int,
            lambda v: None if 20 <= v <= 65535 else "must be 20-65535",
            "QoS 1 messages the broker may hand over before they are acknowledged; the "
            "broker queues only a limited number more (Mosquitto's max_queued_messages, "
            "1,000 by default) for a consumer that falls behind and drops the rest"),
    Setting("METRICS_TOKEN", "", str,
            lambda v: None if v == "" or len(v) >= 16 else "must be at least 16 characters",
            "bearer token for GET /metrics; empty: /metrics answers 404"),
    Setting("FILING_MAX_MB", 20, int, _positive, help="largest filed rules document"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def load_settings(environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read every setting from the environment, apply overrides, and validate.

    Raises ConfigError naming the first bad setting so start-up stops with a clear message.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = env.get(setting.name)
        if raw is None:
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"setting {setting.name}={raw!r} is invalid: {exc}") from None
    for name, value in (overrides or {}).items():
        if name in _BY_NAME and isinstance(value, str) and _BY_NAME[name].parse is not str:
            try:
                value = _BY_NAME[name].parse(value)
            except ValueError as exc:
                raise ConfigError(f"setting {name}={value!r} is invalid: {exc}") from None
        values[name] = value
    for setting in SETTINGS:
        if setting.check is not None and values.get(setting.name) is not None:
            problem = setting.check(values[setting.name])
            if problem:
                raise ConfigError(f"setting {setting.name}={values[setting.name]!r} {problem}")
    return values


def _connect_args(url: str) -> dict[str, Any]:
    """PostgreSQL without JIT compilation: the application's statements are short, and the
    planner's estimate for a few thousand rows read by index can cross the JIT threshold and
    spend 20 ms compiling a 30 ms query (reports run as fast without it)."""
    if url.startswith("postgresql"):
        return {"connect_args": {"options": "-c jit=off"}}
    return {}


def flask_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """Translate validated settings into the keys Flask and its extensions read."""
    from datetime import timedelta

    config = dict(values)
    if config.get("SECRET_KEY") is None:
        config["SECRET_KEY"] = secrets.token_hex(32)
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    if config.get("REPORTS_DATABASE_URL"):
        # A bind no model names: only reports_session() reads through it.
        config["SQLALCHEMY_BINDS"] = {REPORTS_BIND: {
            "url": config["REPORTS_DATABASE_URL"], "pool_pre_ping": True,
            **_connect_args(config["REPORTS_DATABASE_URL"])}}
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True,
                                                    **_connect_args(config["DATABASE_URL"])})
    config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=config["SESSION_IDLE_MINUTES"])
    config["SESSION_REFRESH_EACH_REQUEST"] = True
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["REMEMBER_COOKIE_DURATION"] = timedelta(seconds=0)
    config["BABEL_DEFAULT_LOCALE"] = config["DEFAULT_LOCALE"]
    config["BABEL_DEFAULT_TIMEZONE"] = config["TIMEZONE"]
    config["BABEL_TRANSLATION_DIRECTORIES"] = str(Path(__file__).parent / "translations")
    config["WTF_CSRF_TIME_LIMIT"] = None
    config["MAX_CONTENT_LENGTH"] = config["MAX_UPLOAD_MB"] * 1024 * 1024
    return config
