"""Multipart uploads: parts stream through the chunker like any PUT; Complete stitches.

A part's chunks are stored as it arrives, and the registry remembers the part's leaves
(CID and size of each chunk), its MD5 and its checksum: nothing is committed to the bucket.
The store is synced before the part's row is written (``_record_part``), so a row never
names a chunk a crash could lose: an acknowledged part survives kill -9 and can be
completed after a restart. Concurrent parts share syncs (a store groups concurrent
``sync`` calls: the disk store's later callers find the earlier one did their work).
CompleteMultipartUpload checks the client's part list (InvalidPart, InvalidPartOrder,
EntityTooSmall), concatenates the parts' leaves in order and builds ONE UnixFS DAG over
them, so when every part but the last is a multiple of the chunk size the object's root is
exactly the root of the same bytes sent in a single PUT. No chunk is read or copied, except
to compute the BLAKE3 ``x-cid`` digest when the object is within ``cid_budget_bytes``
(above it the digest is left out: absent, never wrong).

Completing an upload commits the object, then in one registry transaction replaces the
upload by its result (the part list and the object's manifest), kept for
``COMPLETED_UPLOAD_RETENTION_MS``: an SDK retrying a Complete whose answer it missed gets
the same answer, as on S3; another part list finds no upload.

An upload created with a checksum algorithm gives the object that algorithm's checksum of
the upload's type (``relay.chunker.checksums``): COMPOSITE hashes the parts' checksums,
FULL_OBJECT combines the parts' CRCs with their lengths; neither reads a byte.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import blake3

from relay.bucket.engine import Engine, key_bytes
from relay.bucket.errors import EngineError
from relay.bucket.inflight import InFlightWrites, in_flight_write
from relay.bucket.manifest import DEFAULT_CONTENT_TYPE, Manifest, decode_manifest
from relay.bucket.reach import body_parts
from relay.bucket.writer import Precondition
from relay.chunker import (
    Checksum,
    ChecksumType,
    ChunkedBody,
    Leaf,
    combine,
    composite,
    default_type,
)
from relay.chunker.checksums import new_hasher
from relay.ipld import dagcbor
from relay.ipld.block import raw_block
from relay.registry.base import PartRecord, UploadMissing, UploadRecord, now_ms

MIN_PART_BYTES: Final = 5 << 20  # every part but the last, as in S3
MAX_PART_BYTES: Final = 5 << 30
MAX_PARTS: Final = 10_000
# How long a completed upload's result is kept for a retried CompleteMultipartUpload (an
# SDK retries within minutes; S3 answers such retries for some days).
COMPLETED_UPLOAD_RETENTION_MS: Final = 7 * 24 * 3600 * 1000


def parts_identity(requested: Sequence[tuple[int, str]]) -> str:
    """A part list as the completed-upload record names it: numbers and ETags, in order."""
    return ",".join(f"{number}:{etag.lower()}" for number, etag in requested)


class NoSuchUpload(EngineError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"no multipart upload {upload_id!r}")
        self.upload_id = upload_id


class InvalidPart(EngineError):
    pass


class InvalidPartOrder(EngineError):
    pass


class EntityTooSmall(EngineError):
    pass


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """What CreateMultipartUpload asked for, applied to the object at Complete."""

    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    checksum: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # COMPOSITE or FULL_OBJECT; None: the algorithm's default (see checksum_kind).
    checksum_type: str | None = None
    # The object's ACL grants, applied at Complete; None: private.
    acl: tuple[tuple[str, str], ...] | None = None

    @property
    def checksum_kind(self) -> tuple[Checksum, ChecksumType] | None:
        """The upload's algorithm and checksum type, if it was created with one."""
        if self.checksum is None:
            return None
        kind = Checksum(self.checksum)
        if self.checksum_type is None:
            return kind, default_type(kind)
        return kind, ChecksumType(self.checksum_type)

    def encode(self) -> bytes:
        value: dict[str, Any] = {
            "type": self.content_type,
            "meta": self.metadata,
            "hdrs": self.headers,
            "tags": self.tags,
        }
        if self.checksum is not None:
            value["sum"] = self.checksum
        if self.checksum_type is not None:
            value["stype"] = self.checksum_type
        if self.acl is not None:
            value["acl"] = [list(grant) for grant in self.acl]
        return dagcbor.encode(value)

    @classmethod
    def decode(cls, data: bytes) -> UploadRequest:
        value = dagcbor.decode(data)
        return cls(
            value["type"],
            value["meta"],
            value["hdrs"],
            value.get("sum"),
            value.get("tags", {}),
            value.get("stype"),
            None if value.get("acl") is None else tuple((g, p) for g, p in value["acl"]),
        )


@dataclass(frozen=True, slots=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    owner: str
    created_ms: int
    request: UploadRequest


@dataclass(frozen=True, slots=True)
class Part:
    part_number: int
    size: int
    etag: str  # MD5 hex, unquoted
    last_modified_ms: int
    leaves: tuple[Leaf, ...]
    checksums: dict[str, bytes]


def _encode_part(chunked: ChunkedBody, keep: frozenset[Checksum] | None = None) -> bytes:
    return dagcbor.encode(
        {
            "leaves": [[leaf.cid, leaf.size] for leaf in chunked.leaves],
            "sums": {
                kind.value: digest
                for kind, digest in chunked.checksums.items()
                if keep is None or kind in keep
            },
        }
    )


def part_leaves(record: PartRecord) -> tuple[Leaf, ...]:
    """The chunks an uploaded part stored (what garbage collection keeps for it)."""
    return _part(record).leaves


def _part(record: PartRecord) -> Part:
    value = dagcbor.decode(record.data)
    leaves = tuple(Leaf(cid, size) for cid, size in value["leaves"])
    return Part(
        record.part_number, record.size, record.etag, record.created_ms, leaves, value["sums"]
    )


def _upload(record: UploadRecord) -> Upload:
    return Upload(
        record.upload_id,
        record.bucket,
        record.key,
        record.owner,
        record.created_ms,
        UploadRequest.decode(record.request),
    )


class Multipart:
    """Multipart uploads over an ``Engine``."""

    def __init__(self, engine: Engine, *, cid_budget_bytes: int | None = None) -> None:
        self.engine = engine
        self.cid_budget_bytes = (
            engine.config.multipart_cid_budget_bytes
            if cid_budget_bytes is None
            else cid_budget_bytes
        )

    @property
    def in_flight(self) -> InFlightWrites:
        return self.engine.in_flight

    async def create(
        self, bucket: str, key: str, request: UploadRequest, *, owner: str = ""
    ) -> Upload:
        key_bytes(key)
        await self.engine.head_bucket(bucket)
        upload_id = secrets.token_hex(24)
        record = await self.engine.registry.create_upload(
            upload_id, bucket, key, owner, request.encode()
        )
        return _upload(record)

    async def get(self, bucket: str, key: str, upload_id: str) -> Upload:
        record = await self.engine.registry.get_upload(upload_id)
        if record is None or record.bucket != bucket or record.key != key:
            raise NoSuchUpload(upload_id)
        return _upload(record)

    @in_flight_write
    async def upload_part(
        self,
        upload: Upload,
        part_number: int,
        body: AsyncIterable[bytes],
        *,
        checksums: frozenset[Checksum] = frozenset(),
        verify: Callable[[ChunkedBody], None] | None = None,
        size_hint: int | None = None,
        keep_checksums: frozenset[Checksum] | None = None,
    ) -> Part:
        """``checksums`` are computed over the part; it keeps ``keep_checksums`` of them
        (all when None: a payload-hash SHA-256 the client did not ask for need not be)."""
        chunked = (
            await self.engine.store_body(
                body,
                checksums=checksums,
                max_body_bytes=MAX_PART_BYTES,
                size_hint=size_hint,
                build_index=False,
            )
        ).chunked
        if verify is not None:
            verify(chunked)
        record = PartRecord(
            upload.upload_id,
            part_number,
            chunked.size,
            chunked.md5.hex(),
            now_ms(),
            _encode_part(chunked, keep_checksums),
        )
        return await self._record_part(record)

    @in_flight_write
    async def upload_part_copy(
        self, upload: Upload, part_number: int, source: Manifest, start: int, end: int
    ) -> Part:
        """A part made of ``source[start:end]``: whole chunks of the source are reused as
        they are (content addressing makes them the same leaves); only partial chunks at
        the edges become new chunks. Every byte is still read once, verified, to compute
        the part's MD5, as for any upload."""
        plan = await self.engine.plan_read(
            "", source.key, manifest=source, first=start, last=end - 1
        )
        md5 = hashlib.md5()
        # The upload's algorithm, as a part sent with its checksum would have it.
        wanted = upload.request.checksum_kind
        checksum = None if wanted is None else new_hasher(wanted[0])
        leaves: list[Leaf] = []
        for span in plan.spans:
            chunk = await self.engine.store.get(span.cid.multihash)
            piece = chunk[span.skip : span.skip + span.take]
            md5.update(piece)
            if checksum is not None:
                checksum.update(piece)
            if span.skip == 0 and span.take == span.size:
                leaves.append(Leaf(span.cid, span.size))
            else:
                block = raw_block(piece)
                await self.engine.store.put(block.cid.multihash, block.data)
                leaves.append(Leaf(block.cid, len(piece)))
        sums = {} if wanted is None or checksum is None else {wanted[0].value: checksum.digest()}
        data = dagcbor.encode({"leaves": [[leaf.cid, leaf.size] for leaf in leaves], "sums": sums})
        record = PartRecord(
            upload.upload_id, part_number, end - start, md5.hexdigest(), now_ms(), data
        )
        return await self._record_part(record)

    async def _record_part(self, record: PartRecord) -> Part:
        """Make the part's chunks durable, then remember the part (durably: the registry
        commits before it returns). In that order, or a crash between the two leaves a row
        whose chunks are gone, and Complete fails with a missing blob."""
        await self.engine.store.sync()
        try:
            await self.engine.registry.put_part(record)
        except UploadMissing:
            raise NoSuchUpload(record.upload_id) from None  # aborted while the part arrived
        return _part(record)

    async def list_parts(
        self, upload: Upload, *, after_part: int = 0, limit: int = 1000
    ) -> list[Part]:
        records = await self.engine.registry.list_parts(
            upload.upload_id, after_part=after_part, limit=limit
        )
        return [_part(record) for record in records]

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        await self.get(bucket, key, upload_id)
        await self.engine.registry.delete_upload(upload_id)

    async def list_uploads(
        self, bucket: str, *, key_marker: str = "", upload_id_marker: str = "", limit: int = 1000
    ) -> list[Upload]:
        await self.engine.head_bucket(bucket)
        records = await self.engine.registry.list_uploads(
            bucket, after_key=key_marker, after_upload_id=upload_id_marker, limit=limit
        )
        return [_upload(record) for record in records]

    @in_flight_write
    async def complete(
        self,
        upload: Upload,
        requested: Sequence[tuple[int, str]],
        *,
        precondition: Precondition | None = None,
        given_checksums: Sequence[Mapping[str, bytes]] | None = None,
        verify: Callable[[Mapping[str, bytes]], None] | None = None,
    ) -> Manifest:
        """Stitch the requested (part number, ETag) list into the object and commit it.

        ``given_checksums`` are the checksums the client listed for each requested part
        (by algorithm name); each must be the part's own (else InvalidPart, as for an
        ETag). ``verify`` sees the object's checksums before anything is stored; raising
        there commits nothing."""
        numbers = [number for number, _ in requested]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise InvalidPartOrder("the list of parts was not in ascending order")
        request = upload.request
        checksum_kind = request.checksum_kind
        if checksum_kind is not None and numbers != list(range(1, len(numbers) + 1)):
            # S3: with a checksum on every part, the parts must be 1, 2, … N.
            raise InvalidPartOrder("the parts of a checksummed upload must be 1 to N")
        stored = {part.part_number: part for part in await self.list_parts(upload, limit=MAX_PARTS)}
        chosen: list[Part] = []
        for index, (number, etag) in enumerate(requested):
            part = stored.get(number)
            if part is None or part.etag != etag.lower():
                raise InvalidPart(f"part {number} was not uploaded or its ETag differs")
            given = {} if given_checksums is None else given_checksums[index]
            if any(part.checksums.get(name) != digest for name, digest in given.items()):
                raise InvalidPart(f"part {number}'s checksum differs")
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_BYTES:
                raise EntityTooSmall(f"part {part.part_number} is smaller than 5 MiB")
        checksums: dict[str, bytes] = {}
        part_checksums: tuple[dict[str, bytes], ...] | None = None
        stored_type: str | None = None
        if checksum_kind is not None and all(request.checksum in p.checksums for p in chosen):
            kind, checksum_type = checksum_kind
            sums = [part.checksums[kind.value] for part in chosen]
            if checksum_type is ChecksumType.FULL_OBJECT:
                checksums[kind.value] = combine(
                    kind, [(s, part.size) for s, part in zip(sums, chosen, strict=True)]
                )
            else:
                checksums[kind.value] = composite(kind, sums)
            part_checksums = tuple({kind.value: s} for s in sums)
            stored_type = checksum_type.value
        if verify is not None:
            verify(checksums)
        leaves = [leaf for part in chosen for leaf in part.leaves]
        # A zero-byte part contributes an empty leaf; a file's DAG takes those only alone.
        non_empty = [leaf for leaf in leaves if leaf.size]
        if not non_empty:  # an empty object: its DAG is the raw leaf of b""
            empty = raw_block(b"")
            await self.engine.store.put(empty.cid.multihash, empty.data)
            non_empty = [Leaf(empty.cid, 0)]
        root, locations = await self.engine.store_leaves(non_empty)
        md5s = b"".join(bytes.fromhex(part.etag) for part in chosen)
        size = sum(part.size for part in chosen)
        digest = await self._blake3(non_empty) if size <= self.cid_budget_bytes else None
        manifest = Manifest(
            key=upload.key,
            size=size,
            body=root,
            chunk_size=self.engine.config.chunker.chunk_size_bytes,
            etag=f"{hashlib.md5(md5s).hexdigest()}-{len(chosen)}",
            last_modified_ms=now_ms(),
            content_type=request.content_type,
            metadata=dict(request.metadata),
            headers=dict(request.headers),
            blake3=digest,
            part_sizes=tuple(part.size for part in chosen),
            tags=dict(request.tags),
            checksums=checksums,
            part_checksums=part_checksums,
            stored_checksum_type=stored_type,
            acl=request.acl,
        )
        await self.engine.commit_manifest(
            upload.bucket,
            manifest,
            locations,
            precondition,
            body_parts=body_parts(non_empty, locations),
        )
        # The object is committed; now, in one transaction, the upload becomes its result.
        # A crash between the two leaves the upload open, and a retry completes it again.
        await self.engine.registry.complete_upload(
            upload.upload_id,
            parts_identity(requested),
            manifest.to_block().data,
            forget_before_ms=now_ms() - COMPLETED_UPLOAD_RETENTION_MS,
        )
        return manifest

    async def completed(
        self, bucket: str, key: str, upload_id: str, requested: Sequence[tuple[int, str]]
    ) -> tuple[Manifest, str]:
        """What completing ``upload_id`` with this same part list made, and the upload's
        owner: a retried Complete is answered as the first was. Else NoSuchUpload."""
        record = await self.engine.registry.get_completed_upload(upload_id)
        if (
            record is None
            or record.bucket != bucket
            or record.key != key
            or record.parts != parts_identity(requested)
        ):
            raise NoSuchUpload(upload_id)
        return decode_manifest(record.manifest), record.owner

    async def _blake3(self, leaves: Sequence[Leaf]) -> bytes:
        hasher = blake3.blake3()
        for leaf in leaves:
            chunk = await self.engine.store.get(leaf.cid.multihash)
            hasher.update(chunk)
        return hasher.digest()
