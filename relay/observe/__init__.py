"""What relay tells its operator: the request log, Prometheus metrics, health checks.

``requests`` turns each finished HTTP exchange into one log line (text or JSON, never a
secret): this face offers it. ``metrics`` keeps the Prometheus figures (events as they
happen, readings at scrape time), ``store`` counts blob store calls and ``admin`` serves
``/metrics`` and the health endpoints; they load ``prometheus-client`` (~5 MiB resident),
so ``relay.server`` imports them from their modules only when the admin listener is on.
"""

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

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "LogFormat",
    "RequestLog",
    "RequestRecord",
    "configure_logging",
    "format_json",
    "format_text",
    "record_of",
]
