"""fsck: read back everything the retained roots reach, and say what is damaged.

Walks every root of the root set (``relay.bucket.roots``; of some buckets only, if asked)
with ``relay.bucket.walk`` in its checking mode: every MST node, manifest and UnixFS
interior node is read from the store (never from a cache) and every chunk is read whole,
each verified against its CID by the store. A block that is missing or does not match is
a ``Problem`` naming the bucket, the version (or pin) and the key where one is known; the
walk goes on around it. The chunks of open multipart uploads are checked too.

Orphans, stored blobs that nothing retained reaches, are counted when every bucket is
checked: they are garbage collection's to delete, not damage, and do not make a store
unclean. A read that finds a blob damaged makes the store forget it (the self-healing rule
of ``relay.store.base``), so the next put of the same bytes repairs every object naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.bucket.roots import read_root_set
from relay.bucket.walk import Problem, Walk, reachable_blobs
from relay.ipld.cid import CID, RAW
from relay.registry.base import now_ms
from relay.store.base import BlobNotFound, CorruptBlob

if TYPE_CHECKING:
    from relay.bucket.engine import Engine


@dataclass(frozen=True, slots=True)
class FsckReport:
    roots: int
    blocks_checked: int
    chunks_checked: int
    problems: list[Problem]
    # Stored blobs nothing retained reaches (None when only some buckets were checked).
    orphan_blobs: int | None
    orphan_bytes: int | None

    @property
    def clean(self) -> bool:
        return not self.problems


async def check_store(
    engine: Engine,
    *,
    history_retention_seconds: float,
    buckets: Collection[str] | None = None,
    progress: Callable[[int], object] | None = None,
) -> FsckReport:
    started_ms = now_ms()
    root_set = await read_root_set(
        engine.registry,
        history_retention_seconds=history_retention_seconds,
        buckets=buckets,
        at_ms=started_ms,
    )
    walk = Walk(engine.blocks, engine.store, strict=False, verify_chunks=True, progress=progress)
    for root in root_set.roots:
        await walk.walk(root)
    problems = list(walk.problems)
    for mh, part in root_set.upload_chunks.items():
        try:
            await engine.store.get(mh)
        except (BlobNotFound, CorruptBlob) as exc:
            kind = "missing" if isinstance(exc, BlobNotFound) else "corrupt"
            problems.append(
                Problem(
                    part.bucket,
                    None,
                    f"{part.key} (upload {part.upload_id}, part {part.part_number})",
                    CID.v1(RAW, mh),
                    "chunk",
                    kind,
                    str(exc),
                )
            )
    orphans: int | None = None
    orphan_bytes: int | None = None
    if buckets is None:
        reachable = await reachable_blobs(walk, engine.registry, list(root_set.upload_chunks))
        orphans = orphan_bytes = 0
        async for blob in engine.store.list_blobs():
            if blob.multihash not in reachable:
                orphans += 1
                orphan_bytes += blob.size
    return FsckReport(
        roots=len(root_set.roots),
        blocks_checked=len(walk.blocks_reached),
        chunks_checked=len(walk.chunks) + len(root_set.upload_chunks),
        problems=problems,
        orphan_blobs=orphans,
        orphan_bytes=orphan_bytes,
    )
