"""PostObject: a browser form upload (presigned POST), streamed into the engine.

The body is read through the pure ``relay.s3.formdata`` parser. The fields before the
``file`` part (bounded in size, as S3 bounds them) are gathered; then the policy's
signature, expiry and conditions are checked (``relay.s3.postpolicy``) and the bucket's
ownership, all before a byte of the file is taken. The file's bytes then flow from the
parser straight into ``Engine.put_object`` (memory stays flat whatever the file's size);
what follows the file is read to the closing boundary and ignored, as S3 ignores fields
after the file, and a form cut short fails the upload, so it commits nothing.

The form's fields stand in for a PUT's headers (``Content-Type``, ``Cache-Control``...,
``x-amz-meta-*``, ``x-amz-checksum-*``, ``acl`` as ``x-amz-acl``, ``tagging`` as an XML
tag set) and go through the same header audit and checks as a PutObject.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Final
from urllib.parse import quote, urlencode, urlsplit

from relay.chunker import ChunkedBody
from relay.http import (
    BodyTimeout,
    ClientDisconnected,
    Request,
    RequestBody,
    RequestBodyError,
    Response,
)
from relay.s3 import access, checksums, formdata, headers, permissions, postpolicy, routing
from relay.s3.buckets import owned_bucket
from relay.s3.context import Context, empty_response, xml_response
from relay.s3.errors import (
    AccessDenied,
    EntityTooSmall,
    IncompleteBody,
    InvalidArgument,
    InvalidRequest,
    MalformedPOSTRequest,
    PreconditionFailed,
    RequestTimeout,
)
from relay.s3.objects import stored_headers
from relay.s3.payload import READ_BYTES
from relay.s3.tagging import check_canned_acl, parse_tagging
from relay.s3.xml import document, element
from relay.sigv4 import VerifiedRequest

# The engine's bound on one PUT (5 GiB, as S3's), also the bound on a form's file.
MAX_FILE_BYTES: Final = 5 << 30
_SIGNATURE_FIELDS: Final = frozenset(
    {"policy", "x-amz-signature", "signature", "awsaccesskeyid", "x-amz-algorithm",
     "x-amz-credential", "x-amz-date", "x-amz-security-token"}
)  # fmt: skip
# Form fields named differently from the header they stand for.
_AS_HEADER: Final = {"acl": "x-amz-acl"}

MakeContext = Callable[[VerifiedRequest, dict[str, str]], Context]


class _Form:
    """The body as form events: fields first, then the file's bytes."""

    def __init__(self, request: Request, body: RequestBody) -> None:
        content_type = request.header("content-type")
        if formdata.media_type(content_type) != "multipart/form-data":
            raise PreconditionFailed(
                "Bucket POST must be of the enclosure-type multipart/form-data",
                Condition="Bucket POST must be of the enclosure-type multipart/form-data",
            )
        self._parser = formdata.FormParser(formdata.boundary_of(content_type))
        self._body = body
        self._pending: list[formdata.Event] = []
        self.fields: dict[str, str] = {}
        self.file: formdata.FileStart | None = None

    async def _next_piece(self) -> bytes | None:
        try:
            piece = await self._body.receive_some(READ_BYTES)
        except BodyTimeout:
            raise RequestTimeout() from None
        except ClientDisconnected:
            raise IncompleteBody() from None
        except RequestBodyError as exc:
            raise InvalidRequest(str(exc)) from None
        return piece or None

    async def _next_events(self) -> bool:
        piece = await self._next_piece()
        if piece is None:
            self._parser.close()
            return False
        self._pending = self._parser.feed(piece)
        return True

    async def read_fields(self) -> None:
        """Gather the fields up to the file part (S3 requires the file to be last)."""
        while True:
            while self._pending:
                event = self._pending.pop(0)
                if isinstance(event, formdata.Field):
                    self._add_field(event)
                elif isinstance(event, formdata.FileStart):
                    self.file = event
                    return
                elif isinstance(event, formdata.End):
                    raise InvalidArgument("POST requires exactly one file upload per request.")
            if not await self._next_events():
                raise InvalidArgument("POST requires exactly one file upload per request.")

    def _add_field(self, event: formdata.Field) -> None:
        name = event.name.lower()
        try:
            value = event.value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPOSTRequest() from None
        if name in self.fields:
            raise InvalidArgument(f"The form field '{name[:64]}' is given more than once.")
        self.fields[name] = value

    async def file_bytes(self) -> AsyncGenerator[bytes, None]:
        """The file's bytes; then the rest of the body, read to its end and ignored."""
        in_file, ended = True, False
        while True:
            for event in self._pending:
                if isinstance(event, formdata.FileData) and in_file:
                    yield event.data
                elif isinstance(event, formdata.FileEnd):
                    in_file = False
                elif isinstance(event, formdata.End):
                    ended = True
            self._pending = []
            if ended:
                # Drain what follows the closing boundary (an epilogue is allowed).
                while await self._next_piece() is not None:
                    pass
                return
            if not await self._next_events():
                raise MalformedPOSTRequest()


def _object_key(fields: dict[str, str], filename: str) -> str:
    if "key" not in fields:
        raise InvalidArgument(
            "Bucket POST must contain a field named 'key'.  If it is specified, please check"
            " the order of the fields."
        )
    # A browser sends the file's name alone; an old one may send a whole client path.
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return fields["key"].replace("${filename}", name)


def _success(
    request: Request, fields: dict[str, str], bucket: str, key: str, etag: str
) -> Response:
    host = request.header("host") or "localhost"
    location = f"http://{host}/{quote(bucket)}/{quote(key, safe='/')}"
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect and urlsplit(redirect).scheme in ("http", "https"):
        query = urlencode({"bucket": bucket, "key": key, "etag": f'"{etag}"'})
        joiner = "&" if urlsplit(redirect).query else "?"
        return empty_response(303, [("location", f"{redirect}{joiner}{query}")])
    answered = [("etag", f'"{etag}"'), ("location", location)]
    status = fields.get("success_action_status", "204")
    if status == "201":
        body = document(
            "PostResponse",
            element("Location", location)
            + element("Bucket", bucket)
            + element("Key", key)
            + element("ETag", f'"{etag}"'),
            namespace=False,
        )
        return xml_response(201, body, answered)
    return empty_response(200 if status == "200" else 204, answered)


async def post_object(
    request: Request,
    body: RequestBody,
    target: routing.Target,
    make_context: MakeContext,
    lookup_secret: postpolicy.SecretLookup,
    now: float,
    region: str,
) -> Response:
    bucket = target.bucket
    assert bucket is not None  # routing gives PostObject only for a bucket
    form = _Form(request, body)
    await form.read_fields()
    assert form.file is not None
    fields = form.fields
    if "policy" not in fields:
        raise AccessDenied("Access Denied: a form upload needs a signed policy")
    auth = postpolicy.verify_signature(fields, lookup_secret, region=region)
    policy = postpolicy.decode(fields["policy"])
    postpolicy.check_expiry(policy, now)
    key = _object_key(fields, form.file.filename)
    postpolicy.check_fields(policy, {**fields, "bucket": bucket, "key": key})

    as_headers = {
        _AS_HEADER.get(name, name): value
        for name, value in fields.items()
        if name not in _SIGNATURE_FIELDS
    }
    if "content-type" not in as_headers and form.file.content_type:
        as_headers["content-type"] = form.file.content_type
    headers.check_request_headers(routing.PutObject, as_headers)
    ctx = make_context(auth, as_headers)
    # Decided as the PutObject it is: the policy's signer needs s3:PutObject on the key
    # (the bucket's owner, or a grant or policy), and the acl field meets the bucket's
    # ownership controls and public access block.
    await access.authorize(ctx, routing.PutObject(bucket, key))
    check_canned_acl(ctx)
    tags = parse_tagging(fields["tagging"].encode("utf-8")) if "tagging" in fields else None
    await owned_bucket(ctx, bucket)
    check = checksums.body_checksum(as_headers)
    low, high = policy.content_length_range or (0, MAX_FILE_BYTES)

    def verify(stored: ChunkedBody) -> None:
        if stored.size < low:
            raise EntityTooSmall(
                "Your proposed upload is smaller than the minimum allowed size",
                ProposedSize=str(stored.size),
                MinSizeAllowed=str(low),
            )
        checksums.verify(check, stored, ())

    content_type, metadata, content = stored_headers(as_headers)
    async with aclosing(form.file_bytes()) as file_bytes:
        manifest = await ctx.engine.put_object(
            bucket,
            key,
            file_bytes,
            content_type=content_type,
            metadata=metadata,
            headers=content,
            tags=tags,
            checksums=check.kinds,
            keep_checksums=check.kinds,
            verify=verify,
            max_body_bytes=min(high, MAX_FILE_BYTES),
            acl=permissions.object_grants_for_write(ctx),
        )
    return _success(request, fields, bucket, key, manifest.etag)
