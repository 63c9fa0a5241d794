"""The root set: everything garbage collection keeps, and fsck checks, defined here once.

What is kept is whatever these reach (``relay.bucket.gc`` walks them):

- each bucket's current root;
- every root its commit log holds from within ``gc.history_retention_seconds``
  (``relay.bucket.retention``);
- every pinned root (``Registry.list_pins``: snapshots and kept versions write there);
- the chunks of every part of every open multipart upload;
- and, beyond what the registry can say, writes in flight (``relay.bucket.inflight``) and
  every blob younger than ``gc.grace_seconds`` (``relay.bucket.gc``).

A feature that keeps something new adds it here (a pin, or a new kind of root), never as
an exception inside the collector. Order matters where the registry moves from one kind
of root to another: a CompleteMultipartUpload commits the object, *then* forgets the
upload, so uploads are read before roots; an object seen in neither would have to have
been completed after the uploads were read and committed before the roots were read,
which puts it among the roots.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from relay.bucket.multipart import part_leaves
from relay.bucket.retention import retention_cutoff_ms
from relay.ipld.cid import CID
from relay.registry.base import Registry, now_ms

# Uploads and parts read per registry query.
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Root:
    """One retained root: ``version`` None for a pin (named in ``why``)."""

    bucket: str
    root: CID
    version: int | None
    why: str  # "current", "history" or "pin <name>"


@dataclass(frozen=True, slots=True)
class UploadPart:
    bucket: str
    key: str
    upload_id: str
    part_number: int


@dataclass(slots=True)
class RootSet:
    roots: list[Root] = field(default_factory=list)
    # The chunk (multihash) of each part of an open upload, and one part naming it.
    upload_chunks: dict[bytes, UploadPart] = field(default_factory=dict)


async def read_root_set(
    registry: Registry,
    *,
    history_retention_seconds: float,
    buckets: Collection[str] | None = None,
    at_ms: int | None = None,
) -> RootSet:
    """The root set as the registry has it now (of ``buckets`` only, if given): uploads
    first, then roots (see the module docstring). Roots are listed newest first within a
    bucket, each distinct root once."""
    root_set = RootSet()
    records = [
        record
        for record in await registry.list_buckets()
        if buckets is None or record.name in buckets
    ]
    for record in records:
        after_key = after_upload = ""
        while uploads := await registry.list_uploads(
            record.name, after_key=after_key, after_upload_id=after_upload, limit=_PAGE
        ):
            for upload in uploads:
                after_part = 0
                while parts := await registry.list_parts(
                    upload.upload_id, after_part=after_part, limit=_PAGE
                ):
                    for part in parts:
                        where = UploadPart(
                            upload.bucket, upload.key, upload.upload_id, part.part_number
                        )
                        for leaf in part_leaves(part):
                            root_set.upload_chunks.setdefault(leaf.cid.multihash, where)
                    after_part = parts[-1].part_number
            after_key, after_upload = uploads[-1].key, uploads[-1].upload_id

    cutoff = retention_cutoff_ms(now_ms() if at_ms is None else at_ms, history_retention_seconds)
    seen: set[tuple[str, CID]] = set()

    def add(root: Root) -> None:
        if (root.bucket, root.root) not in seen:
            seen.add((root.bucket, root.root))
            root_set.roots.append(root)

    # The commit log is read before the buckets' current roots: a commit made between the
    # two reads is then among the current roots.
    history = sorted(
        (c for c in await registry.commits_since(cutoff) if buckets is None or c.bucket in buckets),
        key=lambda c: (c.bucket, -c.version),
    )
    for record in await registry.list_buckets():
        if buckets is None or record.name in buckets:
            add(Root(record.name, record.root, record.version, "current"))
    for commit in history:
        add(Root(commit.bucket, commit.root, commit.version, "history"))
    for pin in await registry.list_pins():
        if buckets is None or pin.bucket in buckets:
            add(Root(pin.bucket, pin.root, None, f"pin {pin.name}"))
    return root_set
