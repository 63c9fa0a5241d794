"""CORS: Put/Get/DeleteBucketCors, the preflight (``OPTIONS``), and the headers of actual
responses. The rules and their matching are the pure core ``relay.s3.corsrules``.

The rules live in the registry as the bucket's ``cors`` setting (the canonical document,
deleted with the bucket). They are read from the registry for each request that carries
an ``Origin`` header and names a bucket, and for no other: a request without Origin costs
nothing, and every process serving one registry sees a change at once (no cache to go
stale). They are written through the engine, so its short-lived copy of the bucket's
settings (which access decisions read) never holds the old rules.
"""

from __future__ import annotations

from typing import Final

from relay.bucket import Engine, NoSuchBucket
from relay.http import Request, Response
from relay.s3 import corsrules
from relay.s3.buckets import owned_bucket
from relay.s3.context import Context, check_body_digests, drain, empty_response, xml_response
from relay.s3.errors import AccessForbidden, BadRequest, NoSuchCORSConfiguration
from relay.s3.payload import Payload
from relay.s3.routing import CorsPreflight, DeleteBucketCors, GetBucketCors, PutBucketCors

SETTING: Final = "cors"


async def bucket_rules(engine: Engine, bucket: str) -> tuple[corsrules.CorsRule, ...] | None:
    """The bucket's rules; None when it has none (or does not exist)."""
    document = (await engine.registry.get_bucket_settings(bucket)).get(SETTING)
    return None if document is None else corsrules.parse(document)


async def put_bucket_cors(ctx: Context, endpoint: PutBucketCors) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    payload = Payload(ctx.body, ctx.auth, ctx.content_length())
    body = await drain(payload, corsrules.MAX_DOCUMENT_BYTES + 1)
    check_body_digests(ctx.headers, body, payload.trailers)
    rules = corsrules.parse(body)
    await ctx.engine.put_bucket_setting(endpoint.bucket, SETTING, corsrules.render(rules))
    return empty_response(200)


async def get_bucket_cors(ctx: Context, endpoint: GetBucketCors) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    rules = await bucket_rules(ctx.engine, endpoint.bucket)
    if rules is None:
        raise NoSuchCORSConfiguration(BucketName=endpoint.bucket)
    return xml_response(200, corsrules.render(rules))


async def delete_bucket_cors(ctx: Context, endpoint: DeleteBucketCors) -> Response:
    await owned_bucket(ctx, endpoint.bucket)
    await ctx.engine.put_bucket_setting(endpoint.bucket, SETTING, None)
    return empty_response(204)


async def preflight(engine: Engine, request: Request, endpoint: CorsPreflight) -> Response:
    """Answer an ``OPTIONS`` from the bucket's rules; unauthenticated, as on S3."""
    origin = request.header("origin")
    if not origin:
        raise BadRequest("Insufficient information. Origin request header needed.")
    method = request.header("access-control-request-method")
    if not method:
        raise BadRequest(f"Invalid Access-Control-Request-Method: {method or 'null'}")
    where = {"Method": method, "ResourceType": "BUCKET" if endpoint.key is None else "OBJECT"}
    try:
        await engine.head_bucket(endpoint.bucket)
    except NoSuchBucket:
        raise AccessForbidden("CORSResponse: Bucket not found", **where) from None
    rules = await bucket_rules(engine, endpoint.bucket)
    if rules is None:
        raise AccessForbidden("CORSResponse: CORS is not enabled for this bucket.", **where)
    headers = corsrules.requested_headers(request.header("access-control-request-headers"))
    rule = corsrules.match_preflight(rules, origin, method, headers)
    if rule is None:
        raise AccessForbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the"
            " evalution of Origin, request method / Access-Control-Request-Method or"
            " Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            **where,
        )
    return empty_response(200, corsrules.preflight_headers(rule, origin, headers))


async def response_headers(
    engine: Engine, bucket: str, origin: str, method: str
) -> list[tuple[str, str]]:
    """The CORS headers an actual response (success or error) of ``bucket`` carries for a
    request with ``origin``: none when the bucket has no rules or does not exist."""
    rules = await bucket_rules(engine, bucket)
    if rules is None:
        return []
    return corsrules.response_headers(rules, origin, method)
