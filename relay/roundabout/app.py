"""The roundabout listener: a CID (or a configured bucket's key) in, a 302 out.

Routes (what existing roundabout clients use)::

    GET|HEAD /{cid}[?expires=N]              claims for the CID's multihash → 302
    GET|HEAD /key/{key}?bucket=NAME[&expires=N]   presigned GET of {prefix}{key} → 302

``/key/`` presigns whatever key it is given, claimed or not, so it answers only for a
configured bucket marked ``key_access = true`` (403 for any other configured bucket, 404
for an unknown one): never mark the bucket relay's own ``s3`` store writes to, where every
tenant's blobs are.

``expires`` is whole seconds from 1 to 604800 (SigV4's limit), default 259200 (3 days);
anything else is 400. Only raw (0x55) and CAR (0x0202) CIDs name bytes a URL can hold as
they are, so other codecs are 400 like an unparsable CID.

Choosing among a CID's claims (``rank_claims``, pure): a claim with a byte range (a
``length``, or an ``offset`` other than 0) is part of a larger resource and a redirect
cannot say "only these bytes", so it is never used; a claim whose URL names a key in a
configured bucket is answered with a presigned GET; any other http(s) URL without
userinfo is redirected to as it is; anything else (``s3://`` of a bucket relay holds no
keys for, other schemes) is unusable. Signable claims come first, in the configured
buckets' preference order (then file order), unsignable ones after; ties go by URL. When
only ranged claims exist the answer is 404 with a message saying so (404, not another
status, because clients treat 404 as "fetch it elsewhere", which is what they should do).

Answers are plain text; errors carry a one-line message. With ``require_auth``, every
request must carry SigV4 (header or presigned query) for one of relay's own access keys,
checked before anything else; a CID is then answered only if its content is reachable
from a bucket the signing key may read (its own, unowned ones, and what
``[[roundabout.grants]]`` add: ``RoundaboutConfig.scope_for``), which the registry's
``content_reachable`` decides. Otherwise the answer is 403, before the claims are looked
at, so a refusal says nothing of whether the CID is stored at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import parse_qsl, unquote_to_bytes

from relay.http import Request, RequestBody, Response
from relay.ipld.cid import CAR, CID, RAW, CIDError
from relay.registry.base import Claim
from relay.roundabout.config import ContentScope, RoundaboutConfig
from relay.roundabout.matching import SigningBucket, find_signer, parse_url, redirectable_as_is
from relay.roundabout.signing import DEFAULT_EXPIRES_SECONDS, MAX_EXPIRES_SECONDS, presigned_get
from relay.sigv4 import SigV4Error, verify

log = logging.getLogger("relay.roundabout")

REDIRECTABLE_CODECS: Final = {RAW: "raw", CAR: "CAR"}


class ClaimSource(Protocol):
    async def claims_for(self, content: bytes) -> list[Claim]: ...

    async def content_reachable(
        self, content: bytes, *, owners: Collection[str], buckets: Collection[str]
    ) -> bool: ...


class RoundaboutError(Exception):
    """An answer other than a redirect: ``status`` and a message for the client."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass(frozen=True, slots=True)
class CidRoute:
    cid: CID
    expires_seconds: int


@dataclass(frozen=True, slots=True)
class KeyRoute:
    key: str
    bucket: str
    expires_seconds: int


def parse_expires(values: Sequence[str]) -> int:
    if not values:
        return DEFAULT_EXPIRES_SECONDS
    if len(values) > 1:
        raise RoundaboutError(400, "expires may be given once")
    text = values[0]
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_EXPIRES_SECONDS:
        raise RoundaboutError(
            400, f"expires must be whole seconds from 1 to {MAX_EXPIRES_SECONDS}, not {text!r}"
        )
    return int(text)


def route(method: str, path: str, query: str) -> CidRoute | KeyRoute:
    """The request's route, or a ``RoundaboutError`` (405, 404, 400)."""
    if method not in ("GET", "HEAD"):
        raise RoundaboutError(405, f"{method} is not allowed here", [("allow", "GET, HEAD")])
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    expires = parse_expires(params.get("expires", []))
    if path.startswith("/key/"):
        try:
            key = unquote_to_bytes(path.removeprefix("/key/")).decode("utf-8")
        except UnicodeDecodeError:
            raise RoundaboutError(400, "the key is not UTF-8") from None
        buckets = params.get("bucket", [])
        if len(buckets) != 1 or not buckets[0]:
            raise RoundaboutError(400, "/key/{key} needs one bucket=NAME")
        if not key:
            raise RoundaboutError(400, "/key/{key} needs a key")
        return KeyRoute(key, buckets[0], expires)
    text = path.removeprefix("/")
    if not text or "/" in text:
        raise RoundaboutError(404, "roundabout serves /{cid} and /key/{key}?bucket=NAME")
    try:
        cid = CID.decode(text)
        codec = cid.codec
    except (CIDError, ValueError):
        raise RoundaboutError(400, f"{text!r} is not a valid CID") from None
    if codec not in REDIRECTABLE_CODECS:
        raise RoundaboutError(
            400, f"roundabout redirects raw (0x55) and CAR (0x0202) CIDs, not codec {codec:#x}"
        )
    return CidRoute(cid, expires)


def is_whole(claim: Claim) -> bool:
    """The claim is for the whole resource at its URL (no byte range)."""
    return claim.length is None and claim.offset in (None, 0)


@dataclass(frozen=True, slots=True)
class Candidate:
    claim: Claim
    signer: SigningBucket | None  # None: redirect to the claim's URL as it is
    key: str  # the key to presign (empty when signer is None)


def rank_claims(claims: Sequence[Claim], config: RoundaboutConfig) -> list[Candidate]:
    """The usable claims, best first (see the module docstring)."""
    order = {bucket: index for index, bucket in enumerate(config.buckets)}
    ranked: list[tuple[tuple[int, int, str], Candidate]] = []
    for claim in claims:
        if not is_whole(claim):
            continue
        location = parse_url(claim.url, config.domains)
        signer = find_signer(location, config.buckets) if location is not None else None
        if signer is not None and location is not None:
            ranked.append(((0, order[signer], claim.url), Candidate(claim, signer, location.key)))
        elif redirectable_as_is(claim.url):
            ranked.append(((1, 0, claim.url), Candidate(claim, None, "")))
    ranked.sort(key=lambda pair: pair[0])
    return [candidate for _, candidate in ranked]


def _text(status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
    body = (message + "\n").encode("utf-8")
    return Response(
        status,
        [("content-type", "text/plain; charset=utf-8"), *headers],
        body,
        content_length=len(body),
    )


class RoundaboutApp:
    def __init__(
        self,
        registry: ClaimSource,
        config: RoundaboutConfig,
        credentials: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if config.require_auth and not credentials:
            raise ValueError("roundabout require_auth needs relay's access keys")
        self.registry = registry
        self.config = config
        self._credentials = dict(credentials or {})
        self._clock = clock

    async def handle(self, request: Request, body: RequestBody) -> Response:
        try:
            return await self._handle(request)
        except RoundaboutError as error:
            return _text(error.status, error.message, error.headers)
        except SigV4Error as error:
            log.info("roundabout request refused: %s", error.code)
            return _text(error.status, f"{error.code}: {error}")

    async def _handle(self, request: Request) -> Response:
        now = self._clock()
        scope: ContentScope | None = None
        if self.config.require_auth:
            verified = verify(
                request.method,
                request.path,
                request.query,
                request.wire_headers,
                self._credentials.get,
                now,
            )
            scope = self.config.scope_for(verified.access_key)
        target = route(request.method, request.path, request.query)
        if isinstance(target, KeyRoute):
            return self._redirect(self._key_url(target, now))
        if scope is not None and not scope.everything:
            reachable = await self.registry.content_reachable(
                target.cid.multihash, owners=scope.owners, buckets=scope.buckets
            )
            if not reachable:
                raise RoundaboutError(
                    403,
                    f"AccessDenied: {target.cid} is not in a bucket this access key may read",
                )
        claims = await self.registry.claims_for(target.cid.multihash)
        candidates = rank_claims(claims, self.config)
        if not candidates:
            if any(not is_whole(claim) for claim in claims):
                raise RoundaboutError(
                    404,
                    f"{target.cid} has only byte-range claims, and a byte range cannot be"
                    " expressed as a redirect",
                )
            raise RoundaboutError(404, f"no location claim for {target.cid}")
        best = candidates[0]
        if best.signer is None:
            return self._redirect(best.claim.url)
        return self._redirect(
            presigned_get(best.signer, best.key, now=now, expires_seconds=target.expires_seconds)
        )

    def _key_url(self, target: KeyRoute, now: float) -> str:
        # config.buckets is in preference order: the first of that name is the preferred.
        named = [bucket for bucket in self.config.buckets if bucket.bucket == target.bucket]
        for bucket in named:
            if bucket.key_access:
                return presigned_get(
                    bucket,
                    bucket.prefix + target.key,
                    now=now,
                    expires_seconds=target.expires_seconds,
                )
        if named:
            raise RoundaboutError(
                403,
                f"AccessDenied: bucket {target.bucket!r} does not answer /key/"
                " (the operator has not set key_access = true for it)",
            )
        raise RoundaboutError(404, f"no configured bucket {target.bucket!r}")

    @staticmethod
    def _redirect(url: str) -> Response:
        return Response(302, [("location", url), ("content-length", "0")], b"")
