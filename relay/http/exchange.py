"""What the server reports about each request it finished: the input of the request log
and the request metrics (``relay.observe``), which the HTTP layer knows nothing of.

A handler may leave *notes* on its ``Response`` (``Response.notes``: the request id, the
operation…); the server passes them through untouched. The server records neither the
request target nor any header but User-Agent: a query string can hold a presigned URL's
signature, and no part of it may reach a log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

# The notes the request log reads, by name (a handler may leave any of them).
NOTE_REQUEST_ID: Final = "request_id"
NOTE_ACCESS_KEY: Final = "access_key"  # the access key id, never its secret
NOTE_OPERATION: Final = "operation"
NOTE_BUCKET: Final = "bucket"
NOTE_KEY: Final = "key"
NOTE_ERROR: Final = "error"  # an error code
NOTE_REASON: Final = "reason"  # why the request was refused or failed


@dataclass(frozen=True, slots=True)
class Exchange:
    started: float  # when the request head arrived, seconds since the epoch
    remote: str  # the peer's "host:port", "" when unknown
    method: str
    user_agent: str
    status: int  # what was sent; 0 when nothing could be (the peer went away first)
    bytes_in: int  # request body bytes received
    bytes_out: int  # response body bytes sent
    duration_seconds: float  # from the head's arrival to the last byte sent
    notes: Mapping[str, str] = field(default_factory=dict)
    # Why the exchange ended badly when the handler could not say so itself ("the client
    # went away", "body below the minimum rate"); "" otherwise.
    failure: str = ""


# Called once per finished request, on the connection's task: it must not block.
ExchangeObserver = Callable[[Exchange], None]


def ignore_exchange(exchange: Exchange) -> None:
    """The observer of a server nobody watches."""


@dataclass(slots=True)
class HttpActivity:
    """What a running server is doing now, counted as it happens and read by the metrics
    at scrape time (plain integers: no cost beyond an increment)."""

    open_connections: int = 0
    requests_in_flight: int = 0
    connections_shed: int = 0  # idle connections closed to admit a new one at the limit
    busy_answers: int = 0  # connections answered 503 at the limit
