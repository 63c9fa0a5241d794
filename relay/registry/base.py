"""What the registry records, and its errors.

The registry is the small, strongly consistent part of relay's state: which buckets
exist and the root CID each one currently *is*; the commit log (every root a bucket has
had, which makes snapshots, ``relay log`` and diffs possible); where each structural block
(MST node, manifest, UnixFS interior node) sits inside the CAR blob that holds it; which
blobs each bucket's history reaches (``Reach``: roundabout's ``require_auth`` asks); and
the tables multipart uploads and location claims need. Everything else is content-addressed
and lives in the blob store.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Final, Protocol

from relay.ipld.cid import CID


class RegistryError(Exception):
    """Base of the registry's own errors."""


class RegistryUnavailable(RegistryError):
    """The database did not answer in time: down, restarting or unreachable. Transient:
    nothing was recorded unless the message says the outcome is unknown (a commit whose
    answer was lost); the caller may retry (S3: 503 ServiceUnavailable)."""


class BucketExists(RegistryError):
    def __init__(self, name: str, owner: str) -> None:
        super().__init__(f"bucket {name!r} exists")
        self.name = name
        self.owner = owner


class BucketMissing(RegistryError):
    def __init__(self, name: str) -> None:
        super().__init__(f"bucket {name!r} does not exist")
        self.name = name


class CommitConflict(RegistryError):
    """The bucket's root moved since the writer read it (another process committed)."""

    def __init__(self, name: str, expected_version: int) -> None:
        super().__init__(f"bucket {name!r} is no longer at version {expected_version}")
        self.name = name
        self.expected_version = expected_version


@dataclass(frozen=True, slots=True)
class BucketRecord:
    name: str
    owner: str
    created_ms: int
    root: CID
    version: int


@dataclass(frozen=True, slots=True)
class CommitRecord:
    bucket: str
    version: int
    root: CID
    time_ms: int
    car: bytes | None  # multihash of the commit CAR blob (None for the bucket's creation)
    puts: int
    deletes: int


@dataclass(frozen=True, slots=True)
class Reach:
    """The blobs a commit makes reachable from its bucket, by multihash.

    ``bodies``: the body of each object the commit writes (its UnixFS root's multihash;
    for an object of one chunk, that chunk). ``parts``: (blob, body) for the blobs under a
    body of more than one chunk (its chunks and its index CAR). The commit CAR itself is
    recorded by the registry. A body copied from another object needs no ``parts``: they
    were recorded when the body was first committed.
    """

    bodies: tuple[bytes, ...] = ()
    parts: tuple[tuple[bytes, bytes], ...] = ()


NO_REACH: Final = Reach()


@dataclass(frozen=True, slots=True)
class BlockLocation:
    """A block (by multihash) is ``blob[offset : offset + length]``."""

    block: bytes
    blob: bytes
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class PinRecord:
    """A root kept whatever its age (a snapshot, a version someone asked to keep):
    garbage collection keeps everything ``root`` reaches until the pin is removed."""

    name: str
    bucket: str
    root: CID
    created_ms: int


class UploadMissing(RegistryError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"no multipart upload {upload_id!r}")
        self.upload_id = upload_id


@dataclass(frozen=True, slots=True)
class UploadRecord:
    upload_id: str
    bucket: str
    key: str
    owner: str
    created_ms: int
    request: bytes  # the engine's encoding of what CreateMultipartUpload asked for


@dataclass(frozen=True, slots=True)
class CompletedUploadRecord:
    """What completing an upload made, kept so that a retried Complete gets it again."""

    upload_id: str
    bucket: str
    key: str
    owner: str
    parts: str  # the part list completed, as relay.bucket.multipart writes it
    manifest: bytes  # the object's manifest block
    completed_ms: int


@dataclass(frozen=True, slots=True)
class PartRecord:
    upload_id: str
    part_number: int
    size: int
    etag: str
    created_ms: int
    data: bytes  # the engine's encoding of the part's leaves and checksums


@dataclass(frozen=True, slots=True)
class Claim:
    """A location claim: ``content`` (a multihash) can be fetched at ``url``, either the
    whole resource or, with ``offset``/``length``, that byte range of it."""

    content: bytes
    url: str
    offset: int | None = None
    length: int | None = None


def now_ms() -> int:
    """The registry's clock: milliseconds since the epoch (commit times, part dates)."""
    return time.time_ns() // 1_000_000


class Registry(Protocol):
    """What relay asks of a registry, whatever the database behind it.

    Every method is a transaction of its own and durable when it returns (a crash after
    it cannot undo it), so a caller may acknowledge what it recorded. ``commit`` is the
    one compare-and-swap: the bucket's root moves only from ``expected_version``, with the
    commit log row, the block locations and what the commit reaches, all or nothing.
    ``SqliteRegistry`` (``relay.registry.sqlite``) is the embedded one;
    ``PostgresRegistry`` (``relay.registry.postgres``) is shared by many processes and
    hosts, and raises ``RegistryUnavailable`` from any method while PostgreSQL is down.
    """

    async def ping(self) -> None: ...

    # buckets
    async def create_bucket(self, name: str, owner: str, root: CID) -> BucketRecord: ...
    async def delete_bucket(self, name: str, *, expected_version: int) -> None: ...
    async def get_bucket(self, name: str) -> BucketRecord | None: ...
    # The bucket as committed now, for every read that must see the writes acknowledged
    # before it started (by any process). Cheaper than get_bucket where the backend can
    # prove a remembered answer still current; never older than the last commit.
    async def bucket_head(self, name: str) -> BucketRecord | None: ...
    # A bucket's settings (policy, ACL, CORS rules, ...), each an opaque document under a
    # name its owner module chooses; deleted with the bucket. None deletes one.
    async def get_bucket_settings(self, bucket: str) -> dict[str, bytes]: ...
    async def put_bucket_setting(self, bucket: str, name: str, value: bytes | None) -> None: ...
    async def list_buckets(self) -> list[BucketRecord]: ...

    # commits and the blocks they wrote
    async def commit(
        self,
        bucket: str,
        *,
        expected_version: int,
        root: CID,
        car: bytes | None,
        locations: Sequence[BlockLocation],
        puts: int,
        deletes: int,
        reach: Reach = ...,
    ) -> CommitRecord: ...
    # Hold the bucket's commit lock and yield the bucket as it is: no other process
    # commits it meanwhile, so a ``commit`` from inside cannot lose; it is durable once
    # the block exits without an error. The path of a writer that lost a compare-and-swap.
    def hold_bucket(self, name: str) -> AbstractAsyncContextManager[BucketRecord]: ...
    async def commit_log(
        self, bucket: str, *, newest_first: bool = True, limit: int | None = None
    ) -> list[CommitRecord]: ...
    async def root_at(self, bucket: str, version: int) -> CID | None: ...
    async def commit_at(self, bucket: str, version: int) -> CommitRecord | None: ...
    # Every bucket's commits made at or after since_ms (the history retention keeps), in
    # no particular order.
    async def commits_since(self, since_ms: int) -> list[CommitRecord]: ...

    # pins (garbage collection's roots beyond history retention); root None removes one
    async def set_pin(self, name: str, bucket: str, root: CID | None) -> None: ...
    async def list_pins(self) -> list[PinRecord]: ...

    # Garbage collection deleted these blobs: forget every row that names them (the
    # block locations inside them, their claims, what reaches them and the bodies whose
    # root block was inside them), in one transaction.
    async def forget_blobs(self, blobs: Collection[bytes]) -> None: ...
    async def find_block(self, block: bytes) -> BlockLocation | None: ...
    async def find_blocks(self, blocks: Iterable[bytes]) -> dict[bytes, BlockLocation]: ...

    # what each bucket reaches (roundabout's require_auth)
    async def content_reachable(
        self, content: bytes, *, owners: Collection[str], buckets: Collection[str] = ()
    ) -> bool: ...
    async def record_reach(self, bucket: str, reach: Reach) -> None: ...
    async def reach_backfill_pending(self) -> bool: ...
    async def finish_reach_backfill(self) -> None: ...

    # multipart uploads
    async def create_upload(
        self, upload_id: str, bucket: str, key: str, owner: str, request: bytes
    ) -> UploadRecord: ...
    async def get_upload(self, upload_id: str) -> UploadRecord | None: ...
    async def list_uploads(
        self, bucket: str, *, after_key: str = "", after_upload_id: str = "", limit: int = 1000
    ) -> list[UploadRecord]: ...
    async def put_part(self, part: PartRecord) -> None: ...
    async def list_parts(
        self, upload_id: str, *, after_part: int = 0, limit: int = 10_000
    ) -> list[PartRecord]: ...
    async def delete_upload(self, upload_id: str) -> bool: ...
    async def complete_upload(
        self, upload_id: str, parts: str, manifest: bytes, *, forget_before_ms: int
    ) -> None: ...
    async def get_completed_upload(self, upload_id: str) -> CompletedUploadRecord | None: ...

    # location claims
    async def add_claims(self, claims: Sequence[Claim]) -> None: ...
    async def claims_for(self, content: bytes) -> list[Claim]: ...
    async def all_claims(
        self, *, after: tuple[bytes, str] = (b"", ""), limit: int = 10_000
    ) -> list[Claim]: ...

    async def aclose(self) -> None: ...
