"""A fake piri node for tests: the ucanto service and the blob HTTP routes piri serves.

It implements the protocol from the service side with relay.ucan's helpers, checking what
a real piri checks (content type, invocation signatures and expiry, a delegation chain from
its own DID to the invoker that covers the ability) and answering as the reference vectors
show (tests/store/test_piri_store.py reproduces the vectors' response CARs with it):

- ``POST /``: ``application/vnd.ipld.car`` only (else 415); ``blob/allocate`` answers an
  address ``{url}/blob/{z…}`` with ``content-length`` and ``x-amz-checksum-sha256``
  headers, or no address when it holds the bytes; ``blob/accept`` answers a signed
  ``assert/location`` claim (range ``{0, size}``) forked as an effect; anything else is
  ``HandlerNotFound``; an unproven invocation is ``Unauthorized``.
- ``PUT /blob/{z…}``: only for allocated blobs, body checked against the sha256 header.
- ``GET /blob/{z…}``: the whole blob (``corrupt`` lists blobs served with a flipped byte).

``fail_next`` makes the next N requests answer 503 (to test retries).
"""

from __future__ import annotations

import base64
import hashlib
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from relay.http import Request, RequestBody, Response, serve_http
from relay.ipld.base import b58decode
from relay.ipld.block import Block
from relay.ipld.cid import CID, blob_key
from relay.store.piri import PiriStoreConfig
from relay.ucan import (
    CAR_MEDIA_TYPE,
    ByteRange,
    Capability,
    Delegation,
    Effects,
    Signer,
    Ucan,
    UcanError,
    agent_response,
    decode_ucan,
    did_from_bytes,
    format_delegation,
    issue,
    issue_receipt,
    location_claim,
    parse_agent_message,
)

UNSUPPORTED_BODY = (
    "The server cannot process the request because the payload format is not supported."
    " Please check the content-type header and try again with a supported media type."
)


def piri_delegation(
    piri: Signer, client: str, *abilities: str, expiration: int | None = None
) -> str:
    """What ``piri delegate generate --client-did`` prints: ``piri`` grants ``client``."""
    caps = [
        Capability(piri.did, ability) for ability in abilities or ("blob/allocate", "blob/accept")
    ]
    ucan = issue(piri, client, caps, expiration=expiration)
    return format_delegation(Delegation(ucan, (ucan.block,)))


def piri_store_config(
    endpoint: str, piri_did: str, delegation: str, **settings: object
) -> PiriStoreConfig:
    return PiriStoreConfig(
        endpoint=endpoint,
        did=piri_did,
        delegation=delegation,
        retry_base_seconds=0.01,
        **settings,  # type: ignore[arg-type]
    )


def checksum_header(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


@dataclass
class FakePiri:
    signer: Signer
    url: str = "http://127.0.0.1:3000"
    clock: Callable[[], float] = time.time
    upload_ttl_seconds: int = 86400
    blobs: dict[bytes, bytes] = field(default_factory=dict)
    allocated: dict[bytes, int] = field(default_factory=dict)
    corrupt: set[bytes] = field(default_factory=set)
    fail_next: int = 0
    puts: int = 0
    abilities: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def did(self) -> str:
        return self.signer.did

    # -- the ucanto service (pure) -------------------------------------------------------

    def service(self, body: bytes) -> bytes:
        """Run every invocation of a request CAR; the response CAR."""
        message = parse_agent_message(body)
        now = int(self.clock())
        reports: dict[CID, Block] = {}
        effects: list[Block] = []
        for cid in message.execute:
            ucan = decode_ucan(Block(cid, message.blocks[cid]))
            out, forked = self._run(ucan, message.blocks, now)
            fx = Effects(tuple(block.cid for block in forked))
            reports[cid] = issue_receipt(self.signer, cid, out, fx=fx)
            effects.extend(forked)
        echoed = [Block(cid, data) for cid, data in message.blocks.items() if cid != message.root]
        return agent_response(reports, [*echoed, *effects])

    def _run(
        self, ucan: Ucan, blocks: Mapping[CID, bytes], now: int
    ) -> tuple[dict[str, Any], list[Block]]:
        capability = ucan.capabilities[0]
        self.abilities.append(capability.can)
        if capability.can not in ("blob/allocate", "blob/accept"):
            return _error(
                "HandlerNotFound", f'service does not implement {{can: "{capability.can}"}} handler'
            ), []
        refusal = self._authorize(ucan, capability.can, blocks, now)
        if refusal is not None:
            return _error("Unauthorized", refusal), []
        nb = capability.nb or {}
        digest, size = nb["blob"]["digest"], nb["blob"]["size"]
        if capability.can == "blob/allocate":
            if digest in self.blobs:
                return {"ok": {"size": 0}}, []  # nothing newly allocated: skip the PUT
            self.allocated[digest] = size
            address = {
                "url": self.blob_url(digest),
                "headers": {
                    "content-length": str(size),
                    "x-amz-checksum-sha256": _b64_of_digest(digest),
                },
                "expires": now + self.upload_ttl_seconds,
            }
            return {"ok": {"size": size, "address": address}}, []
        if digest not in self.blobs:
            return _error("BlobNotFound", f"blob {blob_key(digest)} was not uploaded"), []
        space = did_from_bytes(nb["space"])
        claim = location_claim(
            self.signer,
            space,
            content=digest,
            urls=[self.blob_url(digest)],
            byte_range=ByteRange(0, size),
            space=space,
        )
        return {"ok": {"site": claim.cid}}, [claim]

    def _authorize(self, ucan: Ucan, can: str, blocks: Mapping[CID, bytes], now: int) -> str | None:
        """Why ``ucan`` may not run (None: it may), as ucanto's validator would judge."""
        not_authorized = f'Claim {{"can":"{can}"}} is not authorized'
        try:
            ucan.verify_signature()
        except UcanError:
            return f"{not_authorized}\n - the invocation's signature does not verify"
        if ucan.audience != self.did or ucan.capabilities[0].with_ != self.did:
            return f"{not_authorized}\n - the invocation is not addressed to {self.did}"
        if ucan.is_expired(now):
            return f"{not_authorized}\n - Expired on {ucan.expiration}"
        if ucan.issuer == self.did or self._proven(ucan, can, blocks, now, depth=0):
            return None
        return f"{not_authorized}\n - Delegated capability not found"

    def _proven(
        self, ucan: Ucan, can: str, blocks: Mapping[CID, bytes], now: int, depth: int
    ) -> bool:
        """Some proof of ``ucan`` delegates ``can`` on our DID to its issuer, chaining
        back to us."""
        if depth > 8:
            return False
        for proof in ucan.proofs:
            if proof not in blocks:
                continue
            try:
                delegation = decode_ucan(Block(proof, blocks[proof]))
                delegation.verify_signature()
            except UcanError:
                continue
            grants = any(
                cap.with_ == self.did and cap.can in (can, "blob/*", "*")
                for cap in delegation.capabilities
            )
            if (
                grants
                and delegation.audience == ucan.issuer
                and not delegation.is_expired(now)
                and (
                    delegation.issuer == self.did
                    or self._proven(delegation, can, blocks, now, depth + 1)
                )
            ):
                return True
        return False

    def blob_url(self, digest: bytes) -> str:
        return f"{self.url}/blob/{blob_key(digest)}"

    # -- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: Request, body: RequestBody) -> Response:
        pieces = []
        while piece := await body.receive_some():
            pieces.append(bytes(piece))
        data = b"".join(pieces)
        self.requests += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            return _text(503, "try again")
        if request.method == "POST" and request.path == "/":
            if request.header("content-type") != CAR_MEDIA_TYPE:
                return _text(415, UNSUPPORTED_BODY, [("accept", CAR_MEDIA_TYPE)])
            answer = self.service(data)
            return Response(200, [("content-type", CAR_MEDIA_TYPE)], answer, len(answer))
        if not request.path.startswith("/blob/z"):
            return _text(404, "not found")
        try:
            digest = b58decode(request.path.removeprefix("/blob/z"))
        except ValueError:
            return _text(400, "not a blob key")
        if request.method == "PUT":
            return self._put(request, digest, data)
        if request.method == "GET":
            blob = self.blobs.get(digest)
            if blob is None:
                return _text(404, "blob not found")
            if digest in self.corrupt and blob:
                blob = bytes([blob[0] ^ 1]) + blob[1:]
            return Response(200, [("content-type", "application/octet-stream")], blob, len(blob))
        return _text(405, "method not allowed")

    def _put(self, request: Request, digest: bytes, data: bytes) -> Response:
        if digest not in self.allocated:
            return _text(403, "not allocated")
        if request.header("x-amz-checksum-sha256") != checksum_header(data):
            return _text(400, "checksum mismatch")
        if len(data) != self.allocated[digest] or b"\x12\x20" + hashlib.sha256(data).digest() != (
            digest
        ):
            return _text(400, "body does not match the allocation")
        self.blobs[digest] = data
        self.puts += 1
        return _text(200, "")


def _b64_of_digest(digest: bytes) -> str:
    return base64.b64encode(digest[2:]).decode("ascii")


def _error(name: str, message: str) -> dict[str, Any]:
    return {"error": {"name": name, "message": message}}


def _text(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    body = text.encode()
    return Response(status, [("content-type", "text/plain"), *(headers or [])], body, len(body))


@asynccontextmanager
async def running_fake_piri(signer: Signer | None = None) -> AsyncIterator[FakePiri]:
    """A ``FakePiri`` served on a free loopback port (its ``url`` says which)."""
    fake = FakePiri(signer or Signer.generate())
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(partial(serve_http, fake.handle, "127.0.0.1", 0))
        fake.url = f"http://{host}:{port}"
        yield fake
        nursery.cancel_scope.cancel()


class FakePiriThread:
    """A fake piri in a thread of its own, for tests whose relay is another process."""

    def __init__(self, signer: Signer | None = None) -> None:
        self._ready: queue.Queue[tuple[FakePiri, trio.lowlevel.TrioToken, trio.Event]] = (
            queue.Queue()
        )
        self._thread = threading.Thread(target=trio.run, args=(self._main, signer), daemon=True)
        self._thread.start()
        self.fake, self._token, self._stop = self._ready.get(timeout=10)

    async def _main(self, signer: Signer | None) -> None:
        stop = trio.Event()
        async with running_fake_piri(signer) as fake:
            self._ready.put((fake, trio.lowlevel.current_trio_token(), stop))
            await stop.wait()

    def stop(self) -> None:
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(10)
