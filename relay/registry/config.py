"""Which registry relay opens, and every wait on it, in one frozen value.

``url`` empty means the embedded SQLite file under the data directory; a
``postgresql://`` (or ``postgres://``) URL means a PostgreSQL server shared by any number
of relay processes and hosts. The URL may carry a password (in its user part or as a
``password=`` query parameter): ``redact_url`` is what any message, log line or ``repr``
shows of it, and ``RegistryConfig``'s own ``repr`` shows only that.

Pure: no I/O, no database library, so ``relay.config`` can parse and check it without
loading psycopg into a server that does not use PostgreSQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

POSTGRES_SCHEMES: Final = ("postgresql", "postgres")
REDACTED: Final = "***"


class RegistryUrlError(ValueError):
    """A registry URL relay cannot use (its text never holds the password)."""


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """The registry's URL and the bounds on every wait for PostgreSQL.

    ``connect_timeout_seconds``: opening a connection, or waiting for one from the pool
    (a server that is down is reported after this long, not after the kernel's TCP
    timeout). ``statement_timeout_seconds``: one statement on the server (PostgreSQL's
    ``statement_timeout``; a commit blocked behind another host's lock on its bucket row
    waits at most this long). ``network_timeout_seconds``: how long a connection may go
    silent (unacknowledged data, unanswered TCP keepalives) before it is dropped, so a cut
    link ends a statement in seconds instead of the kernel's 15 minutes.
    ``pool_size``: connections per process, also the number of worker threads that may
    talk to PostgreSQL at once.
    """

    url: str = ""
    connect_timeout_seconds: float = 5.0
    statement_timeout_seconds: float = 30.0
    network_timeout_seconds: float = 10.0
    pool_size: int = 8

    def __post_init__(self) -> None:
        if self.url and urlsplit(self.url).scheme not in POSTGRES_SCHEMES:
            raise RegistryUrlError(
                f"registry.url must be empty (SQLite in the data directory) or a"
                f" postgresql:// URL, not {redact_url(self.url)!r}"
            )
        for name in (
            "connect_timeout_seconds",
            "statement_timeout_seconds",
            "network_timeout_seconds",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise RegistryUrlError(f"registry.{name} must be a positive number of seconds")
        if self.pool_size < 1:
            raise RegistryUrlError("registry.pool_size must be at least 1")

    @property
    def is_postgres(self) -> bool:
        return bool(self.url)

    def __repr__(self) -> str:
        return (
            f"RegistryConfig(url={redact_url(self.url)!r},"
            f" connect_timeout_seconds={self.connect_timeout_seconds!r},"
            f" statement_timeout_seconds={self.statement_timeout_seconds!r},"
            f" network_timeout_seconds={self.network_timeout_seconds!r},"
            f" pool_size={self.pool_size!r})"
        )


def url_password(url: str) -> str | None:
    """The password in ``url`` (user part or ``password=`` parameter), if any."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return parts.password
    except ValueError:
        return None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "password" and value:
            return value
    return None


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: safe to log, show or raise."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, host = netloc.rpartition("@")
            user = userinfo.partition(":")[0]
            netloc = f"{user}:{REDACTED}@{host}"
        query = urlencode(
            [
                (name, REDACTED if name == "password" else value)
                for name, value in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<a malformed URL>"


def scrub(text: str, url: str) -> str:
    """``text`` with every occurrence of ``url``'s password (and ``url`` itself) redacted:
    a driver's message might quote what it was given."""
    text = text.replace(url, redact_url(url))
    password = url_password(url)
    return text.replace(password, REDACTED) if password else text
