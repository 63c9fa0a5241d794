"""Every limit and timeout of the HTTP server, in one frozen record (units in the names)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final


@dataclass(frozen=True, slots=True)
class HttpConfig:
    # From the connection's start (first request) or the first byte of a later request to
    # a complete request head: a slow-loris client cannot hold a connection with a trickle.
    header_timeout_seconds: float = 30.0
    # The longest gap between two pieces of a request body, and the most waiting time a
    # fast body banks for later (relay.http.pacing). Long enough for a client stuck behind
    # a congested link, short enough that a dead peer frees its upload.
    body_stall_timeout_seconds: float = 60.0
    # A request body must average at least this rate, or it is refused (S3: 400
    # RequestTimeout) and the connection closes. 512 B/s is ~4 kbit/s, slower than any
    # real link even shared ten ways, yet a 1-byte-per-5-s trickle runs out of time within
    # body_stall_timeout_seconds.
    body_min_bytes_per_second: float = 512.0
    # How long a kept-alive connection may sit with no byte of a next request. Longer than
    # the idle limits clients commonly apply to pooled sockets (60 s and less), so the
    # client usually closes first and rarely writes into a socket we are closing.
    keepalive_idle_timeout_seconds: float = 75.0
    # A request line plus headers larger than this is answered 431. S3 requests carry at
    # most a few KiB (2 KiB of user metadata plus SigV4 headers).
    max_header_bytes: int = 64 * 1024
    # At this many open connections the longest-idle one is closed to admit a new one;
    # with none idle, the new one is answered 503 and closed (relay.http.server).
    max_connections: int = 1024
    # Those 503 answers: at most this many at once (beyond, a new connection is closed
    # unanswered), each done within this long: the answer is written and what the client
    # sent meanwhile (at most 64 KiB) is discarded, so that closing does not reset the
    # connection before the client reads the answer.
    max_busy_answers: int = 64
    busy_answer_timeout_seconds: float = 1.0
    # After shutdown is requested: how long requests in flight may take to finish.
    shutdown_grace_seconds: float = 30.0
    # After a final response sent before the request body was read: discard at most this
    # much body to keep the connection, else close it. 1 MiB is ~10 ms on a fast link.
    drain_body_bytes: int = 1 << 20
    # ...and spend at most this long doing it.
    drain_timeout_seconds: float = 5.0
    # The longest a single socket write may block (a client that stopped reading).
    write_timeout_seconds: float = 60.0
    # Response.aclose runs even while the connection is being cancelled (shielded); this
    # bounds it so a stuck close cannot hold up shutdown forever.
    aclose_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not value > 0:
                raise ValueError(f"HttpConfig.{field.name} must be positive, not {value!r}")


DEFAULT_HTTP_CONFIG: Final = HttpConfig()
