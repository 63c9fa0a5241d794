"""The object manifest: one DAG-CBOR block per object version, the MST's value.

Shape (keys are short because a listing decodes thousands; absent optionals are omitted,
never null, so the encoding of a manifest is unique)::

    {"v": 1, "key": str, "size": int, "body": CID (UnixFS root), "chunk": int,
     "etag": str (unquoted), "mtime": int (ms since the epoch), "type": str,
     "meta": {str: str}, "hdrs": {str: str}, "sums": {str: bytes},
     "b3": bytes (BLAKE3 of the whole body)?, "parts": [int]?, "psums": [{str: bytes}]?,
     "tags": {str: str}?, "ctype": "COMPOSITE" | "FULL_OBJECT"?,
     "acl": [[grantee: str, permission: str]]?}

A single PUT's ``sums`` are checksums of its bytes (type FULL_OBJECT). A multipart
object's ``psums`` hold each part's own, and its ``sums`` are of the type ``ctype`` says:
COMPOSITE (the checksum of the parts' binary checksums, shown with a ``-N`` suffix; the
type of a multipart object that has no ``ctype``) or FULL_OBJECT (a CRC of the whole
object, combined from the parts' CRCs). ``acl`` is the object's ACL grants when they are
not the default (the owner's FULL_CONTROL alone), so a private object's manifest and CID
are what they were before relay kept ACLs.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Final

from relay.ipld import multihash
from relay.ipld.block import Block, cbor_block
from relay.ipld.cid import CID, RAW
from relay.ipld.dagcbor import decode_verified

FORMAT_VERSION: Final = 1
DEFAULT_CONTENT_TYPE: Final = "binary/octet-stream"


class ManifestError(ValueError):
    """A block that is not a manifest this version of relay can read."""


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    """What a listing shows of an object. Kept apart from the manifest so the listing of
    a large bucket stays in memory (~0.35 KiB a key) where whole manifests would not."""

    size: int
    etag: str
    last_modified_ms: int


@dataclass(frozen=True, slots=True)
class Manifest:
    key: str
    size: int
    body: CID
    chunk_size: int
    etag: str
    last_modified_ms: int
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, bytes] = field(default_factory=dict)
    blake3: bytes | None = None
    part_sizes: tuple[int, ...] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    part_checksums: tuple[dict[str, bytes], ...] | None = None
    # "COMPOSITE" or "FULL_OBJECT"; None: what the object's shape implies (see checksum_type).
    stored_checksum_type: str | None = None
    # The object's ACL grants (grantee, permission); None: private to the bucket's owner.
    acl: tuple[tuple[str, str], ...] | None = None

    @property
    def checksum_type(self) -> str:
        """How ``checksums`` were made: FULL_OBJECT for a single PUT, the upload's type for a
        multipart object (COMPOSITE when the manifest predates the field)."""
        if self.stored_checksum_type is not None:
            return self.stored_checksum_type
        return "FULL_OBJECT" if self.part_sizes is None else "COMPOSITE"

    def summary(self) -> ObjectSummary:
        return ObjectSummary(self.size, self.etag, self.last_modified_ms)

    def checksum_values(self) -> dict[str, str]:
        """Each stored checksum as S3 shows it: base64, ``-N`` for a composite one."""
        suffix = ""
        if self.part_sizes is not None and self.checksum_type == "COMPOSITE":
            suffix = f"-{len(self.part_sizes)}"
        return {
            name: base64.b64encode(digest).decode("ascii") + suffix
            for name, digest in self.checksums.items()
        }

    @property
    def content_cid(self) -> CID | None:
        """``x-cid``: CIDv1, raw codec, BLAKE3 multihash of the whole body."""
        if self.blake3 is None:
            return None
        return CID.v1(RAW, multihash.wrap_blake3(self.blake3))

    def to_ipld(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "key": self.key,
            "size": self.size,
            "body": self.body,
            "chunk": self.chunk_size,
            "etag": self.etag,
            "mtime": self.last_modified_ms,
            "type": self.content_type,
            "meta": dict(self.metadata),
            "hdrs": dict(self.headers),
            "sums": dict(self.checksums),
        }
        if self.blake3 is not None:
            value["b3"] = self.blake3
        if self.part_sizes is not None:
            value["parts"] = list(self.part_sizes)
        if self.tags:
            value["tags"] = dict(self.tags)
        if self.part_checksums is not None:
            value["psums"] = [dict(sums) for sums in self.part_checksums]
        if self.stored_checksum_type is not None:
            value["ctype"] = self.stored_checksum_type
        if self.acl is not None:
            value["acl"] = [list(grant) for grant in self.acl]
        return value

    def to_block(self) -> Block:
        return cbor_block(self.to_ipld())


def _str_map(value: object, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ManifestError(f"manifest field {name!r} must map strings to strings")
    return value


def _checksum_type(value: object) -> str | None:
    if value is None or value == "COMPOSITE" or value == "FULL_OBJECT":
        return value
    raise ManifestError("manifest checksum type must be COMPOSITE or FULL_OBJECT")


def _acl(value: object) -> tuple[tuple[str, str], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(g, list) and len(g) == 2 and all(isinstance(p, str) for p in g) for g in value
    ):
        raise ManifestError("manifest acl must be a list of [grantee, permission] pairs")
    return tuple((grantee, permission) for grantee, permission in value)


def manifest_from_ipld(value: object) -> Manifest:
    if not isinstance(value, dict) or value.get("v") != FORMAT_VERSION:
        raise ManifestError("not a version 1 relay manifest")
    try:
        sums = value["sums"]
        if not isinstance(sums, dict) or not all(isinstance(v, bytes) for v in sums.values()):
            raise ManifestError("manifest checksums must map names to bytes")
        parts = value.get("parts")
        manifest = Manifest(
            key=value["key"],
            size=value["size"],
            body=value["body"],
            chunk_size=value["chunk"],
            etag=value["etag"],
            last_modified_ms=value["mtime"],
            content_type=value["type"],
            metadata=_str_map(value["meta"], "meta"),
            headers=_str_map(value["hdrs"], "hdrs"),
            checksums=sums,
            blake3=value.get("b3"),
            part_sizes=None if parts is None else tuple(parts),
            tags=_str_map(value.get("tags", {}), "tags"),
            part_checksums=None
            if value.get("psums") is None
            else tuple(dict(sums) for sums in value["psums"]),
            stored_checksum_type=_checksum_type(value.get("ctype")),
            acl=_acl(value.get("acl")),
        )
    except KeyError as exc:
        raise ManifestError(f"manifest lacks field {exc}") from None
    if not isinstance(manifest.body, CID) or not isinstance(manifest.key, str):
        raise ManifestError("manifest body must be a CID and key a string")
    return manifest


def decode_manifest(data: bytes) -> Manifest:
    """A manifest from its block's bytes, already checked against the manifest's CID."""
    return manifest_from_ipld(decode_verified(data))
