"""History retention: which of a bucket's past versions are still kept.

Every commit is a root in the commit log, but not every root is kept forever: a version
is *retained* while it is the bucket's current one, was committed within
``gc.history_retention_seconds``, or its root is pinned (``Registry.set_pin``: snapshots,
versions someone asked to keep). Garbage collection keeps what retained roots reach
(``relay.bucket.roots``); a version that is no longer retained may have lost its blocks,
so reading it is refused (``VersionNotRetained``), never half answered. The commit log
keeps its rows as history: ``relay log`` shows which versions are still readable.
"""

from __future__ import annotations

from collections.abc import Collection

from relay.ipld.cid import CID
from relay.registry.base import CommitRecord

# A day of history, as the issue asks: long enough to undo a mistaken sync the next morning.
DEFAULT_HISTORY_RETENTION_SECONDS = 86_400.0


def retention_cutoff_ms(now_ms: int, retention_seconds: float) -> int:
    """Commits made at or after this time are within the retention."""
    return now_ms - int(retention_seconds * 1000)


def is_retained(
    commit: CommitRecord, *, current_version: int, cutoff_ms: int, pinned: Collection[CID]
) -> bool:
    return commit.version == current_version or commit.time_ms >= cutoff_ms or commit.root in pinned
