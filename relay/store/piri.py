"""The ``piri`` blob store: each blob stored on a piri node (the Storacha storage node).

Theory of operation
-------------------
Authority. relay signs with its own ed25519 key (``signer``; its did:key is what an
operator passes to ``piri delegate generate --client-did``) and proves its right to store
with the delegation piri printed (``config.delegation``), whose blocks ride along in every
request. The delegation must be addressed to relay's DID (checked at open: nothing else
could work); whether it grants anything is piri's call, answered in a receipt.

Writes (``put``), the protocol of ``relay.ucan.blob`` and ``../shared/PIRI.md``:

1. ``blob/allocate`` of the blob's multihash and size into ``config.space`` (relay's own
   DID by default). The ``cause`` is a ``space/blob/add`` invocation relay issues to itself,
   as the reference client does (piri does not inspect it; it is not sent).
2. When the answer carries an ``address``, PUT the bytes there with its headers (the
   ``x-amz-checksum-sha256`` in them makes piri check the body). Without one, piri already
   holds the bytes and the PUT is skipped.
3. ``blob/accept``, whose receipt points at an ``assert/location`` claim signed by piri:
   the claim's URLs and byte range go to ``on_stored(mh, urls, byte_range)`` (relay records
   them for roundabout) before ``put`` returns; if that fails, the put fails. A range
   covering exactly the whole blob is reported as ``None`` (whole): piri's claims always
   carry ``{offset: 0, length: size}`` for a blob served alone at its URL.

Every receipt is believed only if it answers our invocation and piri's DID signed it. A
refusal (``Unauthorized``, ``Expired``…) raises ``PiriRefused``, naming the ability and
piri's error; it is never retried. Invocations expire ``invocation_lifetime_seconds`` after
they are made: piri judges them by its own clock.

Healing (see ``relay.store.base``). A put of a blob known present asks piri first, with
a ``blob/allocate`` alone: an answer without an upload address means piri holds the
bytes (deduplicated, one POST instead of the protocol's two and the PUT); an address
means piri lost them, and the whole protocol runs again. A read that gets a 404, or a
blob that does not match its multihash, forgets it (drops it from the known-present set
and the read cache), so the next put runs the protocol without asking first.

Reads. ``GET {endpoint}/blob/{z…}`` answers the whole blob (piri honours no ``Range``), so
every read fetches the whole blob and verifies it against ``mh`` before slicing; a range
is then checked against ``expect`` (``relay.store.memory.check_read``). Blobs read for a
range are kept in a small byte-bounded LRU, because the engine reads many ranges of one
commit CAR in a row. ``has`` is a GET too (no cheaper existence check is specified).

Delete. piri has no delete: the network keeps what it accepted. ``delete`` makes this
store forget the blob (``get``/``has`` answer absent until it is put again, which runs the
protocol again and gets a fresh claim); the bytes stay on the node. piri cannot list
what it holds for relay either, so ``list_blobs`` lists what relay recorded
(``list_recorded``: relay passes the blobs its location claims name, of unknown age and
size) less what was forgotten, and ``reclaim_space`` frees nothing: garbage collection on
a piri store makes relay forget unreachable blobs (their claims), never frees space.

Failures. Connection errors, timeouts and 5xx answers (to the invocation POSTs, the PUT and
GETs) are retried up to ``max_attempts`` times in all, with the backoff of
``relay.store.retry``; then ``StoreUnavailable``. Retrying is safe: allocate and accept are
idempotent for one blob, the PUT and GETs are of content-addressed bytes. Connections go
through one bounded ``HttpPool`` per origin (the upload address may be on another host
than the endpoint).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, TypeVar
from urllib.parse import urlsplit

import trio

from relay.ipld import multihash
from relay.ipld.block import Block
from relay.ipld.cid import blob_key
from relay.store.base import (
    NOTHING_RECLAIMED,
    BlobNotFound,
    BlobRead,
    CorruptBlob,
    ReclaimReport,
    StoredBlob,
    StoreError,
    StoreRefused,
    StoreStatistics,
    StoreUnavailable,
)
from relay.store.httpclient import ConnectionFailed, HttpPool, Response
from relay.store.memory import check_read
from relay.store.piri_config import PiriStoreConfig
from relay.store.retry import in_thread_if_large, pause_before_retry
from relay.store.shared import (
    StoreCounters,
    UpstreamPuts,
    check_partial_read,
    check_range_arguments,
    get_each,
)
from relay.ucan import (
    REQUEST_HEADERS,
    Allocation,
    ByteRange,
    Capability,
    Delegation,
    MalformedUcan,
    Receipt,
    ReceiptRejected,
    Signer,
    TransportError,
    UcantoError,
    accepted_location,
    agent_message,
    allocation,
    blob_accept,
    blob_allocate,
    check_http_response,
    http_put,
    invocation,
    parse_delegation,
    read_receipt,
)

log = logging.getLogger("relay.store.piri")

T = TypeVar("T")

OnClaimed = Callable[[bytes, Sequence[str], ByteRange | None], Awaitable[None]]
ListRecorded = Callable[[], AsyncIterator[StoredBlob]]

_SHA2_256_PREFIX: Final = b"\x12\x20"


@dataclass(frozen=True, slots=True)
class PiriStoreStatistics:
    """What the piri store adds to ``StoreStatistics``."""

    invocations: int
    uploads: int
    uploads_skipped: int  # piri already held the bytes: no PUT
    requests: int
    retries: int
    connections_opened: int
    bytes_sent: int
    bytes_received: int


class PiriRefused(StoreRefused):
    """piri answered an invocation with an error receipt (``Unauthorized``, ``Expired``…).

    ``name`` and ``message`` are piri's; ``ability`` is what relay invoked. The text names
    no secret: DIDs and capability names only.
    """

    def __init__(self, ability: str, mh: bytes, error: UcantoError) -> None:
        first_line = error.message.strip().splitlines()[0] if error.message.strip() else ""
        self.ability = ability
        self.name = error.name
        self.message = first_line
        summary = f"the piri node refused {ability}: {error.name}" + (
            f": {first_line}" if first_line else ""
        )
        super().__init__(summary, f"{summary} (blob {blob_key(mh)})")


class PiriBlobStore:
    """A ``BlobStore`` on a piri node. Open it with ``open_piri_store``."""

    def __init__(
        self,
        config: PiriStoreConfig,
        *,
        signer: Signer,
        on_stored: OnClaimed | None = None,
        list_recorded: ListRecorded | None = None,
    ) -> None:
        if config.delegation is None:
            raise ValueError("the piri store needs a delegation from the piri node")
        delegation = parse_delegation(config.delegation)
        if delegation.ucan.audience != signer.did:
            raise ValueError(
                f"the delegation is for {delegation.ucan.audience}, but relay's key is"
                f" {signer.did}: run `piri delegate generate --client-did {signer.did}`"
            )
        self.config = config
        self.signer = signer
        self.delegation: Delegation = delegation
        self.space = config.space or signer.did
        self._on_stored = on_stored
        self._list_recorded = list_recorded
        parts = urlsplit(config.endpoint)
        self._base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._pools: dict[tuple[str, str, int | None], HttpPool] = {}
        self._forgotten: set[bytes] = set()
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cache_bytes = 0
        self._counters = StoreCounters()
        self._puts = UpstreamPuts(self._counters)
        self._invocations = self._uploads = self._uploads_skipped = self._retries = 0

    def blob_url(self, mh: bytes) -> str:
        """Where piri serves the blob: ``{endpoint}/blob/{z…}``."""
        return f"{self._base}/blob/{blob_key(mh)}"

    # -- the contract --------------------------------------------------------------------

    async def put(self, mh: bytes, data: bytes) -> None:
        size = len(data)
        await self._puts.put(
            mh, size, lambda: self._put_once(mh, data), lambda: self._still_holds(mh, size)
        )

    async def _still_holds(self, mh: bytes, size: int) -> bool:
        """The put path's check: piri allocates nothing for a blob it holds."""
        _, allocated = await self._allocate(mh, size, int(time.time()))
        return allocated.address is None

    async def _put_once(self, mh: bytes, data: bytes) -> None:
        await self._store(mh, bytes(data))
        self._forgotten.discard(mh)

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes:
        check_range_arguments(offset, length)
        check_partial_read(offset, expect)
        self._counters.reads += 1
        whole = offset == 0 and length is None
        blob = None if whole else self._cached(mh)
        if blob is None:
            blob = await self._fetch(mh)
            if not whole:
                self._remember(mh, blob)
        return check_read(mh, blob, offset, length, expect) if not whole else blob

    async def get_many(self, reads: Sequence[BlobRead]) -> list[bytes]:
        return await get_each(self.get, reads)

    async def has(self, mh: bytes) -> bool:
        try:
            await self._fetch(mh)
        except BlobNotFound:
            return False
        return True

    async def delete(self, mh: bytes, *, stored_before_ms: int | None = None) -> bool:
        """Forget the blob here; piri keeps it (see the module docstring). Its age is
        unknown (``list_blobs`` says so), so ``stored_before_ms`` cannot spare it."""
        await trio.lowlevel.checkpoint()
        self._puts.present.discard(mh)
        self._forget_cached(mh)
        self._forgotten.add(mh)
        return True

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """What relay recorded storing here (see the module docstring), less what this
        store has forgotten since."""
        await trio.lowlevel.checkpoint()
        if self._list_recorded is None:
            return
        async for blob in self._list_recorded():
            if blob.multihash not in self._forgotten:
                yield blob

    async def reclaim_space(self) -> ReclaimReport:
        """Nothing: piri has no delete."""
        await trio.lowlevel.checkpoint()
        return NOTHING_RECLAIMED

    async def sync(self) -> None:
        """Nothing to wait for: a put returns after piri accepted the blob."""
        await trio.lowlevel.checkpoint()
        self._counters.syncs += 1

    def statistics(self) -> StoreStatistics:
        return self._counters.snapshot()

    def piri_statistics(self) -> PiriStoreStatistics:
        pools = [pool.statistics() for pool in self._pools.values()]
        return PiriStoreStatistics(
            invocations=self._invocations,
            uploads=self._uploads,
            uploads_skipped=self._uploads_skipped,
            requests=sum(p.requests for p in pools),
            retries=self._retries,
            connections_opened=sum(p.connections_opened for p in pools),
            bytes_sent=sum(p.bytes_sent for p in pools),
            bytes_received=sum(p.bytes_received for p in pools),
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()

    # -- the protocol --------------------------------------------------------------------

    async def _store(self, mh: bytes, data: bytes) -> None:
        config = self.config
        now = int(time.time())
        expiration = now + config.invocation_lifetime_seconds
        proofs = [self.delegation.cid]
        allocate, allocated = await self._allocate(mh, len(data), now)
        if allocated.address is not None:
            headers = [
                (name, value)
                for name, value in allocated.address.headers.items()
                if name.lower() not in ("host", "content-length")
            ]
            headers.append(("Content-Length", str(len(data))))
            await self._http("PUT", allocated.address.url, headers, data, ok=range(200, 300), mh=mh)
            self._uploads += 1
        else:
            self._uploads_skipped += 1
        put = http_put(mh, len(data), allocate.cid)
        accept = blob_accept(
            self.signer,
            config.did,
            space=self.space,
            digest=mh,
            size=len(data),
            put=put.cid,
            proofs=proofs,
            expiration=expiration,
        )
        claim = self._outcome("blob/accept", mh, await self._invoke(accept, mh), accepted_location)
        if claim.content != mh:
            raise StoreError(
                f"piri's location claim {claim.cid} is for {blob_key(claim.content)},"
                f" not {blob_key(mh)}"
            )
        span = claim.range
        if span is not None and span.offset == 0 and span.length in (None, len(data)):
            span = None  # the whole blob: what a plain GET of the URL returns
        if self._on_stored is not None:
            await self._on_stored(mh, claim.urls, span)

    async def _allocate(self, mh: bytes, size: int, now: int) -> tuple[Block, Allocation]:
        """Invoke ``blob/allocate`` of ``mh``: the invocation and piri's answer."""
        config = self.config
        expiration = now + config.invocation_lifetime_seconds
        blob = {"digest": mh, "size": size}
        cause = invocation(
            self.signer,
            self.signer.did,
            Capability(self.space, "space/blob/add", {"blob": blob}),
            proofs=[],
            expiration=expiration,
        )
        allocate = blob_allocate(
            self.signer,
            config.did,
            space=self.space,
            digest=mh,
            size=size,
            cause=cause.cid,
            proofs=[self.delegation.cid],
            expiration=expiration,
        )
        receipt = await self._invoke(allocate, mh)
        return allocate, self._outcome("blob/allocate", mh, receipt, allocation)

    def _outcome(
        self, ability: str, mh: bytes, receipt: Receipt, decode: Callable[[Receipt], T]
    ) -> T:
        try:
            return decode(receipt)
        except UcantoError as exc:
            refused = PiriRefused(ability, mh, exc)
            log.warning("%s", refused)
            raise refused from None
        except (MalformedUcan, ReceiptRejected) as exc:
            raise StoreError(f"piri's answer to {ability} cannot be believed: {exc}") from None

    async def _invoke(self, block: Block, mh: bytes) -> Receipt:
        """POST one invocation (with the delegation's blocks); its checked receipt."""
        self._invocations += 1
        body = agent_message([block], self.delegation.blocks)
        headers = list(REQUEST_HEADERS.items())
        headers.append(("Content-Length", str(len(body))))
        response = await self._http("POST", self._base + "/", headers, body, ok=(200,), mh=mh)
        response_headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in response.headers
        }
        try:
            check_http_response(response.status, response_headers, response.body)
            return read_receipt(response.body, block.cid, self.config.did)
        except TransportError as exc:
            raise StoreError(f"piri did not answer as a ucanto service: {exc}") from None
        except (MalformedUcan, ReceiptRejected) as exc:
            raise StoreError(f"piri's answer cannot be believed: {exc}") from None

    async def _fetch(self, mh: bytes) -> bytes:
        """The whole blob, verified against ``mh``."""
        if mh in self._forgotten:
            await trio.lowlevel.checkpoint()
            raise BlobNotFound(mh)
        try:
            response = await self._http("GET", self.blob_url(mh), [], b"", ok=(200,), mh=mh)
        except BlobNotFound:
            self._puts.forget(mh)
            raise
        blob = response.body
        if not await in_thread_if_large(lambda: multihash.matches(mh, blob), len(blob)):
            self._puts.forget(mh)
            self._forget_cached(mh)
            raise CorruptBlob(mh)
        self._puts.present.add(mh)
        return blob

    # -- the small read cache ------------------------------------------------------------

    def _cached(self, mh: bytes) -> bytes | None:
        blob = self._cache.get(mh)
        if blob is not None:
            self._cache.move_to_end(mh)
        return blob

    def _remember(self, mh: bytes, blob: bytes) -> None:
        limit = self.config.read_cache_bytes
        if len(blob) > limit or mh in self._cache:
            return
        self._cache[mh] = blob
        self._cache_bytes += len(blob)
        while self._cache_bytes > limit:
            _, evicted = self._cache.popitem(last=False)
            self._cache_bytes -= len(evicted)

    def _forget_cached(self, mh: bytes) -> None:
        blob = self._cache.pop(mh, None)
        if blob is not None:
            self._cache_bytes -= len(blob)

    # -- HTTP ----------------------------------------------------------------------------

    def _pool(self, url: str) -> tuple[HttpPool, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"piri gave an address that is not an http(s) URL: {url!r}")
        key = (parts.scheme, parts.hostname, parts.port)
        pool = self._pools.get(key)
        if pool is None:
            config = self.config
            pool = self._pools[key] = HttpPool(
                parts.scheme,
                parts.hostname,
                parts.port,
                max_connections=config.max_connections,
                connect_timeout_seconds=config.connect_timeout_seconds,
                idle_connection_seconds=config.idle_connection_seconds,
            )
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return pool, target

    async def _http(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        ok: Sequence[int],
        mh: bytes,
    ) -> Response:
        """One request, retried on connection failures and 5xx. A 404 to a GET is
        ``BlobNotFound``; any other answer not in ``ok`` a ``StoreError``."""
        config = self.config
        pool, target = self._pool(url)
        parts = urlsplit(url)
        sent = [("Host", parts.netloc), *headers]
        failure = ""
        for attempt in range(config.max_attempts):
            if attempt:
                self._retries += 1
                await pause_before_retry(
                    attempt, config.retry_base_seconds, config.retry_max_seconds
                )
            try:
                response = await pool.request(
                    method, target, sent, body, timeout_seconds=config.attempt_timeout_seconds
                )
            except ConnectionFailed as exc:
                failure = str(exc.args[0])
                continue
            if response.status in ok:
                return response
            if response.status >= 500:
                failure = _describe(response)
                continue
            if response.status == 404 and method == "GET":
                raise BlobNotFound(mh)
            raise StoreError(f"piri refused {method} {url}: {_describe(response)}")
        raise StoreUnavailable(
            f"piri {method} {url} failed after {config.max_attempts} attempts: {failure}"
        )


def _describe(response: Response) -> str:
    text = response.body[:200].decode("utf-8", "replace").strip().splitlines()
    return f"{response.status} {text[0]}" if text else str(response.status)


@asynccontextmanager
async def open_piri_store(
    config: PiriStoreConfig,
    *,
    signer: Signer,
    on_stored: OnClaimed | None = None,
    list_recorded: ListRecorded | None = None,
) -> AsyncIterator[PiriBlobStore]:
    """A ``PiriBlobStore`` signing with ``signer``; its connections are closed on exit.

    ``on_stored(mh, urls, byte_range)`` runs with piri's location claim after each blob is
    accepted, before ``put`` returns (``byte_range`` ``None``: the whole blob). Opening
    parses the delegation (``ValueError`` if it is missing, malformed or addressed to
    another DID) and does no I/O: an unreachable node shows on first use.
    """
    store = PiriBlobStore(config, signer=signer, on_stored=on_stored, list_recorded=list_recorded)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
