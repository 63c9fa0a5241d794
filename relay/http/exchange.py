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
