"""piri's blob protocol: ``blob/allocate``, ``http/put``, ``blob/accept`` and the location
claim that ``blob/accept`` answers with.

1. ``blob/allocate`` (client → piri, ``with`` and ``aud`` = piri's DID), ``nb = {space,
   blob: {digest, size}, cause}``. ``ok = {size, address?: {url, headers, expires}}``;
   without ``address`` piri already holds the bytes.
2. The PUT itself. ucanto clients also describe it as an ``http/put`` invocation issued by
   a key *derived from the blob* (seed = the last 32 bytes of its multihash), carrying
   that key in ``fct`` so anyone can sign its receipt; ``blob/accept`` awaits its outcome.
3. ``blob/accept``, ``nb = {space, blob, _put: {"ucan/await": [".out.ok", <http/put>]}}``.
   ``ok = {site: <link>}``: the ``assert/location`` delegation (piri → space) naming the
   content multihash, the URLs it can be read from and the byte range, is in the response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.ipld.block import Block
from relay.ipld.cid import CID
from relay.ucan.errors import MalformedUcan
from relay.ucan.keys import Signer, did_from_bytes, did_to_bytes
from relay.ucan.receipt import Receipt
from relay.ucan.ucan import Capability, Ucan, decode_ucan, invocation, issue


def _blob(digest: bytes, size: int) -> dict[str, Any]:
    return {"digest": digest, "size": size}


def blob_allocate(
    issuer: Signer,
    provider: str,
    *,
    space: str,
    digest: bytes,
    size: int,
    cause: CID,
    proofs: Sequence[CID],
    expiration: int | None,
) -> Block:
    """The ``blob/allocate`` invocation of ``digest`` (a multihash) into ``space`` on
    ``provider`` (piri's DID). ``proofs`` are the delegation CIDs granting it."""
    nb = {"space": did_to_bytes(space), "blob": _blob(digest, size), "cause": cause}
    return invocation(
        issuer,
        provider,
        Capability(provider, "blob/allocate", nb),
        proofs=proofs,
        expiration=expiration,
    )


def put_signer(digest: bytes) -> Signer:
    """The key ucanto derives for a blob's ``http/put``: seed = last 32 multihash bytes."""
    if len(digest) < 34:
        raise ValueError("the blob digest is a multihash with a 32-byte digest")
    return Signer.from_seed(digest[-32:])


def http_put(digest: bytes, size: int, allocation: CID) -> Block:
    """The ``http/put`` invocation describing the upload that ``allocation`` (the
    ``blob/allocate`` invocation) made room for; ``blob/accept`` awaits its receipt."""
    signer = put_signer(digest)
    nb = {
        "body": _blob(digest, size),
        "url": {"ucan/await": [".out.ok.address.url", allocation]},
        "headers": {"ucan/await": [".out.ok.address.headers", allocation]},
    }
    keys = {"id": signer.did, "keys": {signer.did: signer.archive()}}
    return invocation(
        signer,
        signer.did,
        Capability(signer.did, "http/put", nb),
        proofs=[],
        expiration=None,
        facts=[{"keys": keys}],
    )


def blob_accept(
    issuer: Signer,
    provider: str,
    *,
    space: str,
    digest: bytes,
    size: int,
    put: CID,
    proofs: Sequence[CID],
    expiration: int | None,
) -> Block:
    """The ``blob/accept`` invocation, awaiting ``.out.ok`` of the ``http/put`` ``put``."""
    nb = {
        "space": did_to_bytes(space),
        "blob": _blob(digest, size),
        "_put": {"ucan/await": [".out.ok", put]},
    }
    return invocation(
        issuer,
        provider,
        Capability(provider, "blob/accept", nb),
        proofs=proofs,
        expiration=expiration,
    )


# -- outcomes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """Where and how to PUT the bytes: every header but ``host`` must be sent."""

    url: str
    headers: Mapping[str, str]
    expires: int


@dataclass(frozen=True, slots=True)
class Allocation:
    """``blob/allocate``'s answer; ``address`` is ``None`` when piri has the bytes."""

    size: int
    address: Address | None


def allocation(receipt: Receipt) -> Allocation:
    """Decode a checked ``blob/allocate`` receipt (an error outcome raises it)."""
    ok = receipt.unwrap()
    if not isinstance(ok, dict) or type(ok.get("size")) is not int:
        raise MalformedUcan("blob/allocate ok is {size, address?}")
    address = ok.get("address")
    if address is None:
        return Allocation(ok["size"], None)
    url, headers, expires = (
        (address.get("url"), address.get("headers"), address.get("expires"))
        if isinstance(address, dict)
        else (None, None, None)
    )
    if (
        not isinstance(url, str)
        or type(expires) is not int
        or not isinstance(headers, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise MalformedUcan("blob/allocate address is {url, headers: {str: str}, expires}")
    return Allocation(ok["size"], Address(url, headers, expires))


@dataclass(frozen=True, slots=True)
class ByteRange:
    offset: int
    length: int | None


@dataclass(frozen=True, slots=True)
class LocationClaim:
    """An ``assert/location`` delegation: ``content`` (a multihash) can be read at
    ``urls``, bytes ``range`` of what they serve (``None``: the whole body)."""

    ucan: Ucan
    content: bytes
    urls: tuple[str, ...]
    range: ByteRange | None
    space: str | None

    @property
    def cid(self) -> CID:
        return self.ucan.cid


def decode_location_claim(block: Block) -> LocationClaim:
    """Decode an ``assert/location`` delegation (signature not checked here: call
    ``claim.ucan.verify_signature()``)."""
    ucan = decode_ucan(block)
    claims = [cap for cap in ucan.capabilities if cap.can == "assert/location"]
    if len(claims) != 1 or claims[0].nb is None:
        raise MalformedUcan(f"{block.cid} is not one assert/location claim")
    nb = claims[0].nb
    content, urls, span, space = nb.get("content"), nb.get("location"), nb.get("range"), None
    if isinstance(content, CID):
        digest = content.multihash
    elif isinstance(content, dict) and type(content.get("digest")) is bytes:
        digest = content["digest"]
    else:
        raise MalformedUcan("a location claim's content is a link or {digest}")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise MalformedUcan("a location claim's location is a non-empty list of URLs")
    byte_range = None
    if span is not None:
        if not isinstance(span, dict):
            raise MalformedUcan("a location claim's range is {offset, length?}")
        offset, length = span.get("offset"), span.get("length")
        if type(offset) is not int or (length is not None and type(length) is not int):
            raise MalformedUcan("a location claim's range is {offset, length?}")
        byte_range = ByteRange(offset, length)
    if nb.get("space") is not None:
        if type(nb["space"]) is not bytes:
            raise MalformedUcan("a location claim's space is DID bytes")
        space = did_from_bytes(nb["space"])
    return LocationClaim(ucan, digest, tuple(urls), byte_range, space)


def accepted_location(receipt: Receipt) -> LocationClaim:
    """The location claim a checked ``blob/accept`` receipt points at (``ok.site``),
    decoded from the response blocks and checked to be signed by the receipt's issuer."""
    ok = receipt.unwrap()
    site = ok.get("site") if isinstance(ok, dict) else None
    if not isinstance(site, CID):
        raise MalformedUcan("blob/accept ok is {site: <link>}")
    data = receipt.blocks.get(site)
    if data is None:
        raise MalformedUcan(f"the location claim {site} is not in the response")
    claim = decode_location_claim(Block(site, data))
    if receipt.issuer is not None and claim.ucan.issuer != receipt.issuer:
        raise MalformedUcan(f"the location claim {site} is not issued by {receipt.issuer}")
    claim.ucan.verify_signature()
    return claim


def location_claim(
    issuer: Signer,
    audience: str,
    *,
    content: bytes,
    urls: Sequence[str],
    byte_range: ByteRange | None,
    space: str | None,
    expiration: int | None = None,
) -> Block:
    """Issue an ``assert/location`` claim as piri does (for fakes of piri in tests)."""
    nb: dict[str, Any] = {"content": {"digest": content}, "location": list(urls)}
    if byte_range is not None:
        nb["range"] = {"offset": byte_range.offset}
        if byte_range.length is not None:
            nb["range"]["length"] = byte_range.length
    if space is not None:
        nb["space"] = did_to_bytes(space)
    return issue(
        issuer,
        audience,
        [Capability(issuer.did, "assert/location", nb)],
        expiration=expiration,
    ).block
