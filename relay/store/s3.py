"""The ``s3`` blob store: each blob one object in an upstream S3-compatible bucket.

Theory of operation
-------------------
Layout. Blob ``mh`` is the object ``{prefix}{b58}/{b58}.blob`` where ``{b58}`` is
``blob_key(mh)`` (base58btc with the ``z`` prefix): the layout piri and the existing
retrieval tooling read. Requests are path-style, ``{endpoint}/{bucket}/{key}``, signed
with relay's own SigV4 (``relay.sigv4.sign_headers``), over a bounded pool of keep-alive
connections (``relay.store.httpclient``).

Writes. ``put`` sends one PUT whose ``x-amz-content-sha256`` is the chunk's own sha2-256
digest (taken from the multihash, not recomputed): the upstream checks the body against
it, so a torn or altered upload is refused there. A 200 from S3 means the object is
durable, so ``sync`` has nothing to wait for. No HEAD precedes the PUT: S3 overwrites an
object with identical bytes harmlessly, and against moto on loopback a HEAD costs about
half a 1 MiB PUT (3.3 ms vs 6.5 ms, 50 blobs each) while it saves a PUT only for chunks
another process already wrote: new data, the common case, would pay 50% more. Within
this process, blobs known to be present (put, read or seen by ``has``) are HEADed rather
than uploaded again (see "Healing"), and concurrent puts of one blob share a single
upload. After each upload ``on_stored(mh, url)`` runs (relay records a location claim
there) before ``put`` returns; if it fails, the put fails.

Healing (see ``relay.store.base``). Known present is only a hint: the upstream may lose
an object (a lifecycle rule, an operator, a bucket emptied), so a put of a blob known
present is deduplicated only after a HEAD answers 200 with the blob's Content-Length; a
404 or another length uploads it again. The HEAD sees a missing or resized object, not a
flipped byte (S3 checked the SHA-256 on upload; a later flip is the upstream's fault),
which the next read sees. The cost falls on repeated bytes only (a new blob is PUT with
no HEAD, as before): against moto on loopback, 50 blobs each, on a busy 2-core VM
(``python -m bench.bench_dedupe_check --s3``), a known 4 KiB blob now costs a HEAD of
5-11 ms (a new one's PUT 6-14 ms), a known 1 MiB blob 6-11 ms (its PUT 12-33 ms), where
trusting the set cost no request at all. Not caching the answer (no
"confirmed recently" window) keeps the rule simple: a put that returned was checked.
A read that finds the object missing, or the whole blob not matching its multihash,
forgets it (drops it from the set: the next put uploads it without asking first); a
partial range that fails its ``expect`` first fetches the whole blob to tell a damaged
object from a wrong ``expect``. The location claim recorded at the
first upload names the object's URL, so an upload of the same bytes makes it true again.

Reads. A whole-blob read is a plain GET; a partial read a ``Range`` GET. Every byte is
verified before it is returned, as the ``BlobStore`` contract demands: a whole blob
against ``mh``, a range against ``expect``; a short range means the range ran past the
end of the blob (``CorruptBlob``). The upstream is trusted for availability only.

Failures. Connection errors, timeouts and 5xx answers are retried up to ``max_attempts``
times in all, with exponential backoff (``retry_base_seconds`` doubling up to
``retry_max_seconds``, with jitter); then ``StoreUnavailable`` (the S3 front door
answers 503). A 4xx is not retried: it raises
``StoreError`` naming the status and the S3 error code (and never the secret). All
requests are idempotent (PUT of content-addressed bytes, GET, HEAD, DELETE), so a retry
after an ambiguous failure is safe.

Garbage collection. ``list_blobs`` pages through the prefix with ListObjectsV2 (1,000 keys
a request), each blob's age its LastModified; objects under the prefix that are not blobs
are skipped. ``delete`` removes the object, which frees its space at once (so
``reclaim_space`` has nothing to do), then runs ``on_deleted(mh)``, where relay forgets
the blob's location claims. Several hosts share the bucket, and a collection on one sees
only its own host's writes in flight, so a deduplicated put must restart the blob's age
(``relay.store.base``): the HEAD that confirms a known blob also reads its Last-Modified,
and an object older than ``FRESHEN_AFTER_SECONDS`` is uploaded again rather than trusted.
Garbage collection's delete HEADs the object first and keeps one stored since the
collection began. S3 has no delete conditional on age, so a put landing between that HEAD
and the DELETE (one round trip) can still lose its object: a window of milliseconds in a
collection, against the whole collection without the check.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import hashlib
import html
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

import trio

from relay.ipld import multihash
from relay.ipld.cid import CIDError, blob_key, parse_blob_key
from relay.sigv4 import UNSIGNED_PAYLOAD, quote_path, sign_headers
from relay.sigv4.canonical import canonical_query
from relay.sigv4.sign import signed_host
from relay.store.base import (
    NOTHING_RECLAIMED,
    BlobNotFound,
    BlobRead,
    CorruptBlob,
    ReclaimReport,
    StoredBlob,
    StoreError,
    StoreStatistics,
    StoreUnavailable,
)
from relay.store.httpclient import ConnectionFailed, HttpPool, PoolStatistics, Response
from relay.store.memory import check_read
from relay.store.retry import in_thread_if_large as _in_thread_if_large
from relay.store.retry import pause_before_retry
from relay.store.shared import (
    StoreCounters,
    UpstreamPuts,
    check_partial_read,
    check_range_arguments,
    check_upstream_settings,
    get_each,
)

OnStored = Callable[[bytes, str], Awaitable[None]]
OnDeleted = Callable[[bytes], Awaitable[None]]

_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
# A known blob whose object was last stored longer ago than this is uploaded again by a
# put rather than trusted, so that its age restarts (see "Garbage collection"): well
# under ``gc.grace_seconds`` (an hour by default), and long enough that a busy blob costs
# one upload in ten minutes, not one a put.
FRESHEN_AFTER_SECONDS: Final = 600.0
_SHA2_256_PREFIX: Final = b"\x12\x20"
_CONTENT_RANGE: Final = re.compile(rb"bytes (\d+)-(\d+)/(\d+|\*)")
_LISTED: Final = re.compile(rb"<Contents>(.*?)</Contents>", re.DOTALL)
_LISTED_FIELD: Final = {
    name: re.compile(rf"<{name}>([^<]*)</{name}>".encode())
    for name in ("Key", "Size", "LastModified")
}
_NEXT_TOKEN: Final = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_XML_FIELD: Final = {
    name: re.compile(rf"<{name}>([^<]{{0,200}})</{name}>".encode()) for name in ("Code", "Message")
}


@dataclass(frozen=True, slots=True)
class S3StoreConfig:
    """Where the upstream bucket is and how hard to try. Times are per attempt."""

    endpoint: str  # https://<account>.r2.cloudflarestorage.com, http://127.0.0.1:5000
    bucket: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"  # R2 wants "auto"
    prefix: str = ""
    # Four puts in flight per upload times a handful of concurrent uploads, plus reads.
    max_connections: int = 16
    max_attempts: int = 4
    connect_timeout_seconds: float = 10.0
    # A 16 MiB chunk at a slow 1 MiB/s still fits; a hung upstream is noticed in a minute.
    attempt_timeout_seconds: float = 60.0
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 5.0
    # Below the usual keep-alive timeouts of S3 front ends (AWS ~20 s+, nginx 75 s).
    idle_connection_seconds: float = 15.0

    def __post_init__(self) -> None:
        check_upstream_settings(self.endpoint, self.max_connections, self.max_attempts)
        if not self.bucket or "/" in self.bucket:
            raise ValueError(f"bucket must be a bucket name, not {self.bucket!r}")


@dataclass(frozen=True, slots=True)
class S3StoreStatistics:
    """What the s3 store adds to ``StoreStatistics``: the cost of the upstream."""

    requests: int
    retries: int
    connections_opened: int
    bytes_sent: int
    bytes_received: int


class S3BlobStore:
    """A ``BlobStore`` on an S3-compatible bucket. Open it with ``open_s3_store``."""

    def __init__(
        self,
        config: S3StoreConfig,
        *,
        on_stored: OnStored | None = None,
        on_deleted: OnDeleted | None = None,
    ) -> None:
        self.config = config
        self._on_stored = on_stored
        self._on_deleted = on_deleted
        parts = urlsplit(config.endpoint)
        scheme = parts.scheme
        assert parts.hostname is not None  # checked by S3StoreConfig
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        self._host_header = signed_host(scheme, netloc)
        self._base = f"{scheme}://{self._host_header}{parts.path.rstrip('/')}"
        self._base_path = quote_path(parts.path.rstrip("/"))
        self._pool = HttpPool(
            scheme,
            parts.hostname,
            parts.port,
            max_connections=config.max_connections,
            connect_timeout_seconds=config.connect_timeout_seconds,
            idle_connection_seconds=config.idle_connection_seconds,
        )
        self._counters = StoreCounters()
        self._puts = UpstreamPuts(self._counters)
        self._retries = 0

    # -- naming --------------------------------------------------------------------------

    def object_key(self, mh: bytes) -> str:
        name = blob_key(mh)
        return f"{self.config.prefix}{name}/{name}.blob"

    def object_url(self, mh: bytes) -> str:
        """The blob's path-style URL at the upstream: the URL relay's claims carry."""
        return f"{self._base}{self._object_path(mh)}"

    def _object_path(self, mh: bytes) -> str:
        return self._base_path + quote_path(f"/{self.config.bucket}/{self.object_key(mh)}")

    # -- the contract --------------------------------------------------------------------

    async def put(self, mh: bytes, data: bytes) -> None:
        size = len(data)
        await self._puts.put(
            mh, size, lambda: self._upload(mh, data), lambda: self._still_holds(mh, size)
        )

    async def _still_holds(self, mh: bytes, size: int) -> bool:
        """The put path's check: the object is there, with the blob's length, and stored
        recently enough that garbage collection on another host will not take it for old
        (else it is uploaded again, which restarts its age)."""
        response = await self._request("HEAD", mh, [], b"", ok=(200, 404))
        if response.status != 200 or response.header(b"content-length") != str(size).encode():
            return False
        stored_at_ms = _last_modified_ms(response)
        if stored_at_ms is None:
            return False
        return time.time() - stored_at_ms / 1000 < FRESHEN_AFTER_SECONDS

    async def _upload(self, mh: bytes, data: bytes) -> None:
        if mh[:2] == _SHA2_256_PREFIX and len(mh) == 34:
            payload_hash = mh[2:].hex()  # the upstream checks the body against it
        else:
            payload_hash = await _in_thread_if_large(
                lambda: hashlib.sha256(data).hexdigest(), len(data)
            )
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(data))),
        ]
        await self._request("PUT", mh, headers, bytes(data), payload_hash=payload_hash)
        if self._on_stored is not None:
            await self._on_stored(mh, self.object_url(mh))

    async def get(
        self, mh: bytes, offset: int = 0, length: int | None = None, *, expect: bytes | None = None
    ) -> bytes:
        check_range_arguments(offset, length)
        check_partial_read(offset, expect)
        self._counters.reads += 1
        try:
            return await self._get(mh, offset, length, expect)
        except BlobNotFound:
            self._puts.forget(mh)
            raise
        except CorruptBlob:
            if offset == 0 and length is None:
                self._puts.forget(mh)  # the whole blob failed its own multihash
            else:
                await self._forget_if_damaged(mh)
            raise

    async def _forget_if_damaged(self, mh: bytes) -> None:
        """A range failed its checks: read the whole blob (which forgets it if damaged)."""
        with contextlib.suppress(StoreError):
            await self.get(mh)

    async def _get(self, mh: bytes, offset: int, length: int | None, expect: bytes | None) -> bytes:
        if offset == 0 and (expect is None or length is None):
            # A whole-blob read (or a prefix we must read whole to tell): one plain GET.
            response = await self._request("GET", mh, [], b"", ok=(200,))
            blob = response.body
            if length is None or length == len(blob):
                await self._verify(mh, blob, mh)
                self._puts.present.add(mh)
                return blob
            return check_read(mh, blob, offset, length, expect)
        if length == 0:
            # No Range header names zero bytes: learn the size, then check the empty range.
            size = await self._size(mh)
            if offset > size:
                raise CorruptBlob(mh, f"range {offset}+0 beyond the blob's {size} bytes")
            return await self._checked_part(mh, b"", offset, length, size, expect)
        last = "" if length is None else str(offset + length - 1)
        response = await self._request(
            "GET", mh, [("Range", f"bytes={offset}-{last}")], b"", ok=(200, 206, 416)
        )
        if response.status == 416:  # the range starts at or after the end of the blob
            size = await self._size(mh)
            if length is None and offset == size:
                return await self._checked_part(mh, b"", offset, length, size, expect)
            raise CorruptBlob(mh, f"range {offset}+{length} beyond the blob's {size} bytes")
        if response.status == 200:  # the upstream ignored Range: slice the whole blob
            return check_read(mh, response.body, offset, length, expect)
        match = _CONTENT_RANGE.fullmatch(response.header(b"content-range") or b"")
        if match is None or int(match.group(1)) != offset:
            raise StoreError(f"upstream answered a Range GET of {blob_key(mh)} without its range")
        size = int(match.group(3)) if match.group(3) != b"*" else -1
        part = response.body
        if length is not None and len(part) != length:
            raise CorruptBlob(mh, f"range {offset}+{length} beyond the blob's {size} bytes")
        return await self._checked_part(mh, part, offset, length, size, expect)

    async def get_many(self, reads: Sequence[BlobRead]) -> list[bytes]:
        return await get_each(self.get, reads)

    async def has(self, mh: bytes) -> bool:
        response = await self._request("HEAD", mh, [], b"", ok=(200, 404))
        if response.status == 200:
            self._puts.present.add(mh)
            return True
        self._puts.present.discard(mh)
        return False

    async def delete(self, mh: bytes, *, stored_before_ms: int | None = None) -> bool:
        if stored_before_ms is not None:
            response = await self._request("HEAD", mh, [], b"", ok=(200, 404))
            stored_at_ms = _last_modified_ms(response)
            # Last-Modified counts whole seconds: the object may be up to 999 ms newer.
            if response.status == 200 and (
                stored_at_ms is None or stored_at_ms + 999 > stored_before_ms
            ):
                return False  # stored again since the collection began
        self._puts.present.discard(mh)
        await self._request("DELETE", mh, [], b"", ok=(200, 204, 404))
        self._puts.present.discard(mh)  # a get racing the delete may have re-added it
        if self._on_deleted is not None:
            await self._on_deleted(mh)
        return True

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every blob object under the prefix, a ListObjectsV2 page at a time."""
        bucket_path = self._base_path + quote_path(f"/{self.config.bucket}")
        token: str | None = None
        while True:
            pairs = [("list-type", "2"), ("prefix", self.config.prefix)]
            if token is not None:
                pairs.append(("continuation-token", token))
            response = await self._send(
                "GET", bucket_path, canonical_query(pairs), f"list {self.config.bucket}", [], b""
            )
            for listed in _LISTED.findall(response.body):
                blob = self._listed_blob(listed)
                if blob is not None:
                    yield blob
            match = _NEXT_TOKEN.search(response.body)
            if match is None or b"<IsTruncated>true</IsTruncated>" not in response.body:
                return
            token = html.unescape(match.group(1).decode("utf-8"))

    def _listed_blob(self, listed: bytes) -> StoredBlob | None:
        found = {}
        for name, pattern in _LISTED_FIELD.items():
            match = pattern.search(listed)
            if match is None:
                return None
            found[name] = html.unescape(match.group(1).decode("utf-8"))
        name = found["Key"].removeprefix(self.config.prefix).partition("/")[0]
        try:
            mh = parse_blob_key(name)
            size = int(found["Size"])
            when = datetime.datetime.fromisoformat(found["LastModified"])
        except (CIDError, ValueError):
            return None
        if found["Key"] != self.object_key(mh):
            return None  # not one of relay's blob objects
        return StoredBlob(mh, size, int(when.timestamp() * 1000))

    async def reclaim_space(self) -> ReclaimReport:
        """Nothing to do: deleting an object freed its space."""
        await trio.lowlevel.checkpoint()
        return NOTHING_RECLAIMED

    async def sync(self) -> None:
        """Nothing to wait for: every put that returned was acknowledged durable by S3."""
        await trio.lowlevel.checkpoint()
        self._counters.syncs += 1

    def statistics(self) -> StoreStatistics:
        return self._counters.snapshot()

    def s3_statistics(self) -> S3StoreStatistics:
        pool: PoolStatistics = self._pool.statistics()
        return S3StoreStatistics(
            requests=pool.requests,
            retries=self._retries,
            connections_opened=pool.connections_opened,
            bytes_sent=pool.bytes_sent,
            bytes_received=pool.bytes_received,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()

    # -- verification --------------------------------------------------------------------

    async def _verify(self, mh: bytes, data: bytes, against: bytes) -> None:
        ok = await _in_thread_if_large(lambda: multihash.matches(against, data), len(data))
        if not ok:
            if against == mh:
                raise CorruptBlob(mh)
            raise CorruptBlob(mh, "range does not match the block it should hold")

    async def _checked_part(
        self,
        mh: bytes,
        part: bytes,
        offset: int,
        length: int | None,
        size: int,
        expect: bytes | None,
    ) -> bytes:
        if offset == 0 and len(part) == size:
            await self._verify(mh, part, mh)  # the range is the whole blob
            return part
        if expect is None:
            raise ValueError("a partial read must name the multihash of the block it holds")
        await self._verify(mh, part, expect)
        return part

    async def _size(self, mh: bytes) -> int:
        response = await self._request("HEAD", mh, [], b"", ok=(200,))
        try:
            return int(response.header(b"content-length") or b"")
        except ValueError:
            raise StoreError(f"upstream HEAD of {blob_key(mh)} gave no length") from None

    # -- requests ------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        mh: bytes,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        payload_hash: str | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        """Send a signed request for ``mh``'s object, retrying what is worth retrying.

        404 on a GET or HEAD that does not list it in ``ok`` is ``BlobNotFound``.
        """
        response = await self._send(
            method,
            self._object_path(mh),
            "",
            f"{self.config.bucket}/{self.object_key(mh)}",
            headers,
            body,
            payload_hash=payload_hash,
            ok=(*ok, 404) if method in ("GET", "HEAD") else ok,
        )
        if response.status == 404 and 404 not in ok:
            raise BlobNotFound(mh)
        return response

    async def _send(
        self,
        method: str,
        path: str,
        query: str,
        what: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        payload_hash: str | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        """Send a signed request (``query`` exactly as sent), retrying connection errors
        and 5xx; another status not in ``ok`` raises ``StoreError`` naming ``what``."""
        config = self.config
        target = f"{path}?{query}" if query else path
        if payload_hash is None:
            payload_hash = _EMPTY_SHA256 if not body else UNSIGNED_PAYLOAD
        failure = ""
        for attempt in range(config.max_attempts):
            if attempt:
                self._retries += 1
                await pause_before_retry(
                    attempt, config.retry_base_seconds, config.retry_max_seconds
                )
            signed = [("Host", self._host_header), *headers]
            signed += sign_headers(
                method,
                self._host_header,
                path,
                query,
                signed,
                payload_hash=payload_hash,
                access_key=config.access_key_id,
                secret=config.secret_access_key,
                region=config.region,
                service="s3",
                now=time.time(),
            )
            try:
                response = await self._pool.request(
                    method, target, signed, body, timeout_seconds=config.attempt_timeout_seconds
                )
            except ConnectionFailed as exc:
                failure = str(exc.args[0])
                continue
            if response.status in ok:
                return response
            if response.status >= 500:
                failure = _describe(response)
                continue
            raise StoreError(f"upstream refused {method} {what}: {_describe(response)}")
        raise StoreUnavailable(
            f"upstream {method} {what} failed after {config.max_attempts} attempts: {failure}"
        )


def _describe(response: Response) -> str:
    """``403 SignatureDoesNotMatch: <message>`` from an S3 error document (or the status)."""
    found = {
        name: match.group(1).decode("utf-8", "replace")
        for name, pattern in _XML_FIELD.items()
        if (match := pattern.search(response.body[:4096])) is not None
    }
    code = found.get("Code") or {400: "BadRequest", 403: "Forbidden"}.get(response.status, "")
    text = f"{response.status} {code}".rstrip()
    if "Message" in found:
        text += f": {found['Message']}"
    return text


@asynccontextmanager
async def open_s3_store(
    config: S3StoreConfig,
    *,
    on_stored: OnStored | None = None,
    on_deleted: OnDeleted | None = None,
) -> AsyncIterator[S3BlobStore]:
    """An ``S3BlobStore`` for ``config``; its connections are closed on exit.

    ``on_stored(mh, url)`` runs after each blob is uploaded, before ``put`` returns;
    ``on_deleted(mh)`` after each blob is deleted, before ``delete`` returns.
    Opening does no I/O: an unreachable or misconfigured upstream shows on first use.
    """
    store = S3BlobStore(config, on_stored=on_stored, on_deleted=on_deleted)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()


def _last_modified_ms(response: Response) -> int | None:
    """The object's Last-Modified (an HTTP date, whole seconds) in ms, if it has one."""
    value = response.header(b"last-modified")
    if value is None:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value.decode("latin-1")).timestamp() * 1000)
    except (TypeError, ValueError):
        return None
