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

from dataclasses import dataclass
from typing import Final

from relay.ipld.cid import CID


class RegistryError(Exception):
    """Base of the registry's own errors."""


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
