"""What relay tells its operator: the request log, Prometheus metrics, health checks.

``requests`` turns each finished HTTP exchange into one log line (text or JSON, never a
secret); ``metrics`` keeps the Prometheus figures (events as they happen, readings at
scrape time); ``store`` counts blob store calls; ``admin`` serves ``/metrics`` and the
health endpoints on the admin listener. ``relay.server`` wires them to the running parts.
"""

from relay.observe.admin import READY_CHECK_TIMEOUT_SECONDS, AdminApp, ReadinessCheck
from relay.observe.metrics import CacheReading, Metrics, Readings
from relay.observe.requests import (
    LOG_FORMATS,
    LOG_LEVELS,
    LogFormat,
    RequestLog,
    RequestRecord,
    configure_logging,
    format_json,
    format_text,
    record_of,
)
from relay.observe.store import InstrumentedStore

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "READY_CHECK_TIMEOUT_SECONDS",
    "AdminApp",
    "CacheReading",
    "InstrumentedStore",
    "LogFormat",
    "Metrics",
    "ReadinessCheck",
    "Readings",
    "RequestLog",
    "RequestRecord",
    "configure_logging",
    "format_json",
    "format_text",
    "record_of",
]
