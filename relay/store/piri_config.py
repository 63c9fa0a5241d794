"""The piri store's settings, apart from the store itself.

Configuration is read whatever the store kind; the store (``relay.store.piri``) brings the
UCAN stack and ``cryptography`` with it, some 10 MiB that a disk-store server should not
carry. So the settings live here and the store is imported only when it is opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.store.shared import check_upstream_settings


@dataclass(frozen=True, slots=True)
class PiriStoreConfig:
    """Which piri node, with what authority, and how hard to try. Times are per attempt.

    ``delegation`` is piri's printed form (``m…``); ``None`` until the operator has one
    (``relay did`` works without it; opening the store does not). ``key_file`` is where
    relay's key lives (relative: inside the data directory). ``space`` defaults to
    relay's own DID.
    """

    endpoint: str  # http://127.0.0.1:3000
    did: str  # the piri node's did:key
    delegation: str | None = field(default=None, repr=False)
    delegation_file: str | None = None
    key_file: str = "relay.pem"
    space: str | None = None
    max_connections: int = 16
    max_attempts: int = 4
    connect_timeout_seconds: float = 10.0
    attempt_timeout_seconds: float = 60.0
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 5.0
    idle_connection_seconds: float = 15.0
    # Generous against clock skew between relay and piri, short enough to be useless later.
    invocation_lifetime_seconds: int = 900
    read_cache_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        from relay.ucan import MalformedUcan, parse_did_key  # only a piri config loads it

        check_upstream_settings(self.endpoint, self.max_connections, self.max_attempts)
        try:
            parse_did_key(self.did)
        except MalformedUcan as exc:
            raise ValueError(f"did must be the piri node's ed25519 did:key: {exc}") from None
        if self.space is not None and not self.space.startswith("did:"):
            raise ValueError(f"space must be a DID, not {self.space!r}")
