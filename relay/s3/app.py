"""The S3 application: one request in, one response out, errors rendered once.

``S3App.handle`` is the ``relay.http`` handler. It splits the target (path-style, or
virtual-hosted when the Host is a bucket under one of relay's ``domains``), routes it
(pure), authenticates it (SigV4 or SigV2, ``relay.sigv4.authenticate``), checks its
headers against the audit table in ``relay.s3.headers`` (a header relay does not honour is
refused by name, never dropped), and decides access in one place
(``relay.s3.access.authorize``: owner, bucket policy, ACLs; a request with no signature
at all is anonymous and gets only what those allow) before any handler runs, so a
refused request is answered before its body is read and its client never gets
``100 Continue``. Then it dispatches to the operation family's module, and converts every
error at this one boundary into the S3 XML error document. Every response carries
``x-amz-request-id``.

Two requests carry no signed head and are answered before authentication: a CORS
preflight (``OPTIONS``, from the bucket's rules, ``relay.s3.cors``) and a browser form
upload (``POST /bucket``, whose form carries the signed policy, ``relay.s3.forms``). A
response to a request with ``Origin`` gets the bucket's CORS headers last, errors too.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from relay.bucket import Engine, Multipart
from relay.http import Request, RequestBody, Response
from relay.http.exchange import (
    NOTE_ACCESS_KEY,
    NOTE_BUCKET,
    NOTE_ERROR,
    NOTE_KEY,
    NOTE_OPERATION,
    NOTE_REASON,
    NOTE_REQUEST_ID,
)
from relay.s3 import (
    access,
    buckets,
    copy,
    cors,
    forms,
    headers,
    multipart,
    objects,
    routing,
    tagging,
    xml,
)
from relay.s3.context import Context
from relay.s3.errors import NotImplemented_, S3Error, SlowDown, from_exception
from relay.sigv4 import VerifiedRequest, authenticate, claimed_access_key

log = logging.getLogger("relay.s3")

DEFAULT_REGION: Final = "us-east-1"

Handler = Callable[[Context, Any], Awaitable[Response]]

_DISPATCH: Final[dict[type[routing.Endpoint], Handler]] = {
    routing.CreateBucket: buckets.create_bucket,
    routing.HeadBucket: buckets.head_bucket,
    routing.DeleteBucket: buckets.delete_bucket,
    routing.GetBucketLocation: buckets.get_bucket_location,
    routing.ListObjects: buckets.list_objects_v1,
    routing.ListObjectsV2: buckets.list_objects_v2,
    routing.ListMultipartUploads: multipart.list_uploads,
    routing.DeleteObjects: objects.delete_objects,
    routing.PutObject: objects.put_object,
    routing.GetObject: objects.get_object,
    routing.HeadObject: objects.get_object,
    routing.DeleteObject: objects.delete_object,
    routing.CreateMultipartUpload: multipart.create,
    routing.UploadPart: multipart.upload_part,
    routing.CompleteMultipartUpload: multipart.complete,
    routing.AbortMultipartUpload: multipart.abort,
    routing.ListParts: multipart.list_parts,
    routing.CopyObject: copy.copy_object,
    routing.UploadPartCopy: copy.upload_part_copy,
    routing.GetObjectAttributes: objects.get_object_attributes,
    routing.GetObjectTagging: tagging.get_object_tagging,
    routing.PutObjectTagging: tagging.put_object_tagging,
    routing.DeleteObjectTagging: tagging.delete_object_tagging,
    routing.GetObjectAcl: access.get_object_acl,
    routing.PutObjectAcl: access.put_object_acl,
    routing.GetBucketAcl: access.get_bucket_acl,
    routing.PutBucketAcl: access.put_bucket_acl,
    routing.GetBucketVersioning: tagging.get_bucket_versioning,
    routing.PutBucketVersioning: tagging.put_bucket_versioning,
    routing.ListObjectVersions: buckets.list_object_versions,
    routing.GetBucketConfiguration: tagging.get_bucket_configuration,
    routing.DeleteBucketConfiguration: tagging.delete_bucket_configuration,
    routing.GetBucketCors: cors.get_bucket_cors,
    routing.PutBucketCors: cors.put_bucket_cors,
    routing.DeleteBucketCors: cors.delete_bucket_cors,
    routing.AccessSetting: access.access_setting,
}

# A request with none of these (and no Authorization header) carries no signature at all:
# it is anonymous, and gets only what an ACL or a bucket policy grants everyone. One that
# carries a signature, however broken, is verified and refused as before.
_ANONYMOUS_QUERY_MARKERS: Final = (
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "AWSAccessKeyId", "Signature",
)  # fmt: skip


def _is_anonymous(request: Request, query: Mapping[str, str]) -> bool:
    if request.header("authorization") is not None:
        return False
    return not any(marker in query for marker in _ANONYMOUS_QUERY_MARKERS)


def _anonymous(region: str) -> VerifiedRequest:
    """What handlers see as ``ctx.auth`` of an anonymous request: no key, unsigned body."""
    return VerifiedRequest(
        access_key="",
        payload="UNSIGNED-PAYLOAD",
        seed_signature="",
        signing_key=b"",
        scope="",
        timestamp="",
        region=region,
        presigned=False,
        decoded_content_length=None,
    )


def _first_values(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in headers:
        values.setdefault(name, value)
    return values


class S3App:
    def __init__(
        self,
        engine: Engine,
        credentials: Mapping[str, str],
        *,
        region: str = DEFAULT_REGION,
        clock: Callable[[], float] = time.time,
        multipart_uploads: Multipart | None = None,
        domains: Sequence[str] = (),
    ) -> None:
        self.engine = engine
        self.multipart = multipart_uploads or Multipart(engine)
        self._credentials = dict(credentials)
        self._principals = frozenset(self._credentials)
        self.region = region
        self._clock = clock
        # Hosts under which a Host of BUCKET.<domain> names the bucket (virtual-hosted).
        self._domains = tuple(domains)

    async def handle(self, request: Request, body: RequestBody) -> Response:
        request_id = secrets.token_hex(8).upper()
        # What the request log says of this request (relay.http.exchange): filled in as
        # routing and authentication learn it, so a refusal names what was refused.
        notes = {NOTE_REQUEST_ID: request_id}
        try:
            response = await self._handle(request, body, request_id, notes)
        except Exception as exc:
            response = self._error_response(exc, request, request_id, notes)
        response.headers.append(("x-amz-request-id", request_id))
        response.notes.update(notes)
        await self._add_cors_headers(request, response, notes)
        return response

    async def _add_cors_headers(
        self, request: Request, response: Response, notes: dict[str, str]
    ) -> None:
        """An actual response (an error too) to a request with Origin, of a bucket with
        CORS rules, carries their answer (relay.s3.cors); a preflight carries its own."""
        origin = request.header("origin")
        bucket = notes.get(NOTE_BUCKET)
        if not origin or not bucket or notes.get(NOTE_OPERATION) == "CorsPreflight":
            return
        try:
            response.headers.extend(
                await cors.response_headers(self.engine, bucket, origin, request.method)
            )
        except Exception:
            # The response stands without them; the browser reports the refusal.
            log.exception("request %s: reading the CORS rules failed", notes[NOTE_REQUEST_ID])

    async def _handle(
        self, request: Request, body: RequestBody, request_id: str, notes: dict[str, str]
    ) -> Response:
        first_values = _first_values(request.headers)
        host_bucket = routing.bucket_from_host(first_values.get("host"), self._domains)
        target = routing.split_target(request.path, request.query, host_bucket)
        if target.bucket:
            notes[NOTE_BUCKET] = target.bucket
        if target.key:
            notes[NOTE_KEY] = target.key
        endpoint = routing.route(request.method, target, first_values)
        notes[NOTE_OPERATION] = (
            endpoint.operation if isinstance(endpoint, routing.Unsupported) else endpoint.name
        )
        if isinstance(endpoint, routing.CorsPreflight):
            return await cors.preflight(self.engine, request, endpoint)
        if isinstance(endpoint, routing.PostObject):
            return await self._post_object(request, body, target, request_id, notes)
        anonymous = _is_anonymous(request, target.query)
        if anonymous:
            auth = _anonymous(self.region)
        else:
            auth = authenticate(
                request.method,
                request.path,
                request.query,
                request.wire_headers,
                self._credentials.get,
                self._clock(),
                region=self.region,
                host_bucket=host_bucket,
            )
            notes[NOTE_ACCESS_KEY] = auth.access_key
        if isinstance(endpoint, routing.Unsupported):
            raise NotImplemented_(f"relay does not implement {endpoint.operation} yet")
        headers.check_request_headers(type(endpoint), first_values)
        ctx = Context(
            request,
            body,
            auth,
            target,
            first_values,
            request_id,
            self.engine,
            self.multipart,
            self.region,
            anonymous=anonymous,
            known_principals=self._principals,
        )
        await access.authorize(ctx, endpoint, self._clock())
        if isinstance(endpoint, routing.ListBuckets):
            return await buckets.list_buckets(ctx)
        return await _DISPATCH[type(endpoint)](ctx, endpoint)

    async def _post_object(
        self,
        request: Request,
        body: RequestBody,
        target: routing.Target,
        request_id: str,
        notes: dict[str, str],
    ) -> Response:
        """A browser form upload: its form, not its head, carries the signature."""

        def context(auth: VerifiedRequest, fields: dict[str, str]) -> Context:
            notes[NOTE_ACCESS_KEY] = auth.access_key
            return Context(
                request, body, auth, target, fields, request_id, self.engine, self.multipart,
                self.region,
            )  # fmt: skip

        return await forms.post_object(
            request,
            body,
            target,
            context,
            self._credentials.get,
            self._clock(),
            self.region,
        )

    def busy_answer(self) -> Response:
        """503 SlowDown for a connection over the server's limit (its request unread)."""
        request_id = secrets.token_hex(8).upper()
        error = SlowDown()
        document = xml.error_document(error.code, error.message, "/", request_id, error.extra)
        return Response(
            error.status,
            [("content-type", "application/xml"), ("x-amz-request-id", request_id)],
            document,
        )

    def _error_response(
        self, exc: Exception, request: Request, request_id: str, notes: dict[str, str]
    ) -> Response:
        error = from_exception(exc)
        notes[NOTE_ERROR] = error.code
        notes[NOTE_REASON] = error.message
        if NOTE_ACCESS_KEY not in notes:  # refused before or by authentication
            claimed = claimed_access_key(request.headers, request.query)
            if claimed:
                notes[NOTE_ACCESS_KEY] = claimed
        # A refusal is in the request log (relay.observe) with its reason; only a failure
        # of relay's own, whose text the client never sees, is logged here in full.
        if type(error) is S3Error and not isinstance(exc, S3Error):
            log.exception("request %s (%s %s) failed", request_id, request.method, request.path)
        document = xml.error_document(
            error.code, error.message, request.path, request_id, error.extra
        )
        return Response(
            error.status,
            [("content-type", "application/xml")],
            document,
            content_length=len(document),
        )
