"""The request log: one line per request, as text or JSON, never a secret.

The HTTP server reports each finished exchange (``relay.http.Exchange``: method, remote
address, user agent, status, bytes in and out, duration, and the *notes* the handler left
on its response); the S3 application's notes say which request it was (request id, access
key id, operation, bucket, key, error code, reason). ``record_of`` joins the two into a
``RequestRecord`` and the formatters turn it into a line. Nothing here sees the request
target, its query string or any header but User-Agent, so a signature, a presigned URL's
credential or a secret cannot reach the log by construction.

Lines go to the ``relay.access`` logger at INFO, so ``log.level = "warning"`` silences them
and the server's own messages (``relay.*`` loggers) share the chosen format and level.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Final, Literal

from relay.http import Exchange
from relay.http.exchange import (
    NOTE_ACCESS_KEY,
    NOTE_BUCKET,
    NOTE_ERROR,
    NOTE_KEY,
    NOTE_OPERATION,
    NOTE_REASON,
    NOTE_REQUEST_ID,
)

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")

ACCESS_LOGGER: Final = "relay.access"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request, as the log and the metrics see it."""

    time: float  # when its head arrived, seconds since the epoch
    request_id: str
    remote: str
    access_key: str
    operation: str
    bucket: str
    key: str
    status: int
    error: str  # the S3 error code, "" when the request succeeded
    reason: str  # why it was refused or failed, "" when it succeeded
    bytes_in: int
    bytes_out: int
    duration_seconds: float
    user_agent: str


def record_of(exchange: Exchange) -> RequestRecord:
    notes = exchange.notes
    return RequestRecord(
        time=exchange.started,
        request_id=notes.get(NOTE_REQUEST_ID, ""),
        remote=exchange.remote,
        access_key=notes.get(NOTE_ACCESS_KEY, ""),
        # A request the HTTP layer refused before any handler saw it has no operation.
        operation=notes.get(NOTE_OPERATION, "-"),
        bucket=notes.get(NOTE_BUCKET, ""),
        key=notes.get(NOTE_KEY, ""),
        status=exchange.status,
        error=notes.get(NOTE_ERROR, ""),
        reason=notes.get(NOTE_REASON, "") or exchange.failure,
        bytes_in=exchange.bytes_in,
        bytes_out=exchange.bytes_out,
        duration_seconds=exchange.duration_seconds,
        user_agent=exchange.user_agent,
    )


def _timestamp(epoch: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    return f"{seconds}.{int(epoch % 1 * 1000):03d}Z"


def _field(value: str) -> str:
    """A text-format field: "-" when empty, JSON-quoted when it has spaces or quotes, so a
    key or user agent can never split a line or forge another field."""
    if not value:
        return "-"
    if any(ch.isspace() or ch in '"\\' or not ch.isprintable() for ch in value):
        return json.dumps(value, ensure_ascii=False)
    return value


def format_text(record: RequestRecord, *, worker: str = "") -> str:
    target = f"{record.bucket}/{record.key}" if record.key else record.bucket
    line = (
        f"{_timestamp(record.time)} {_field(record.request_id)} {_field(record.remote)}"
        f" {_field(record.access_key)} {_field(record.operation)} {_field(target)}"
        f" {record.status} {_field(record.error)} in={record.bytes_in} out={record.bytes_out}"
        f" {record.duration_seconds * 1000:.1f}ms ua={_field(record.user_agent)}"
    )
    if record.reason:
        line += f" reason={_field(record.reason)}"
    if worker:  # which of several processes serving one port answered
        line += f" worker={_field(worker)}"
    return line


def format_json(record: RequestRecord, *, worker: str = "") -> str:
    fields: dict[str, object] = asdict(record)
    fields["time"] = _timestamp(record.time)
    fields["duration_ms"] = round(record.duration_seconds * 1000, 3)
    del fields["duration_seconds"]
    if worker:
        fields["worker"] = worker
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


class _JsonLines(logging.Formatter):
    """Server messages (not request lines) as JSON objects, for ``--log-format json``."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == ACCESS_LOGGER:
            return record.getMessage()
        entry = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == ACCESS_LOGGER:
            return record.getMessage()
        text = f"{_timestamp(record.created)} {record.levelname.lower()} {record.name}: "
        text += record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class RequestLog:
    """Writes each finished exchange as one line on the ``relay.access`` logger.

    ``worker`` names the process that served it when several serve one port
    (``relay serve --workers N``): the line then says ``worker=ID`` (JSON: ``"worker"``).
    """

    def __init__(self, log_format: LogFormat = "text", *, worker: str = "") -> None:
        self._format = partial(format_json if log_format == "json" else format_text, worker=worker)
        self._logger = logging.getLogger(ACCESS_LOGGER)

    def write(self, record: RequestRecord) -> None:
        if self._logger.isEnabledFor(logging.INFO):
            self._logger.info(self._format(record))


def configure_logging(level: str = "info", log_format: LogFormat = "text") -> None:
    """Send relay's loggers to stderr in ``log_format`` at ``level`` (the server's choice;
    an embedding program that configured logging itself need not call this)."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be text or json, not {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines() if log_format == "json" else _Text())
    logger = logging.getLogger("relay")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
