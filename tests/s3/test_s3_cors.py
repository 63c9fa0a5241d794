"""CORS through S3App: Put/Get/DeleteBucketCors, preflights, and actual responses' headers."""

from __future__ import annotations

import pytest

from relay.bucket.engine import Engine
from relay.http import Request, Response
from relay.s3 import cors, corsrules
from relay.s3.app import S3App
from relay.s3.corsrules import VARY
from tests.s3.test_s3_app import KEYS, Body, body_of, call, signed

ORIGIN = "http://app.example.com"
CORS = (
    b'<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<CORSRule><AllowedOrigin>http://*.example.com</AllowedOrigin>"
    b"<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>"
    b"<AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>"
    b"<MaxAgeSeconds>600</MaxAgeSeconds></CORSRule>"
    b"</CORSConfiguration>"
)


@pytest.fixture
async def app(engine: Engine) -> S3App:
    app = S3App(engine, KEYS)
    assert (await call(app, "PUT", "/site")).status == 200
    return app


def with_headers(request: Request, *headers: tuple[str, str]) -> Request:
    return Request(
        request.method, request.target, request.path, request.query,
        (*request.headers, *headers), "1.1", None,
    )  # fmt: skip


def preflight(target: str, *headers: tuple[str, str]) -> Request:
    path, _, query = target.partition("?")
    return Request("OPTIONS", target, path, query, (("host", "relay.test"), *headers), "1.1", None)


async def send(app: S3App, request: Request, body: bytes = b"") -> Response:
    return await app.handle(request, Body(body))  # type: ignore[arg-type]


async def error_code(response: Response) -> str:
    body = (await body_of(response)).decode()
    return body.partition("<Code>")[2].partition("</Code>")[0]


async def test_bucket_cors_is_put_read_back_and_deleted(app: S3App) -> None:
    missing = await call(app, "GET", "/site?cors")
    assert missing.status == 404
    assert await error_code(missing) == "NoSuchCORSConfiguration"
    assert (await call(app, "PUT", "/site?cors", CORS)).status == 200
    got = await call(app, "GET", "/site?cors")
    assert got.status == 200
    body = await body_of(got)
    assert b"<AllowedOrigin>http://*.example.com</AllowedOrigin>" in body
    assert b"<MaxAgeSeconds>600</MaxAgeSeconds>" in body
    assert (await call(app, "DELETE", "/site?cors")).status == 204
    assert (await call(app, "GET", "/site?cors")).status == 404


async def test_an_invalid_configuration_is_refused_and_changes_nothing(app: S3App) -> None:
    assert (await call(app, "PUT", "/site?cors", CORS)).status == 200
    bad = CORS.replace(b"<AllowedMethod>PUT<", b"<AllowedMethod>PATCH<")
    refused = await call(app, "PUT", "/site?cors", bad)
    assert refused.status == 400
    assert await error_code(refused) == "InvalidRequest"
    malformed = await call(app, "PUT", "/site?cors", b"<CORSConfiguration><CORSRule>")
    assert await error_code(malformed) == "MalformedXML"
    assert b"PUT</AllowedMethod>" in await body_of(await call(app, "GET", "/site?cors"))


async def test_another_keys_bucket_cors_is_not_theirs(app: S3App) -> None:
    response = await call(app, "PUT", "/site?cors", CORS, user="bob")
    assert response.status == 403


async def test_a_matching_preflight_is_answered_from_the_rules(app: S3App) -> None:
    await call(app, "PUT", "/site?cors", CORS)
    response = await send(app, preflight(
        "/site/photo.jpg",
        ("origin", ORIGIN),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "content-type, x-amz-date"),
    ))  # fmt: skip
    assert response.status == 200
    headers = dict(response.headers)
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-methods"] == "GET, PUT"
    assert headers["access-control-allow-headers"] == "content-type, x-amz-date"
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-max-age"] == "600"
    assert headers["vary"] == VARY


@pytest.mark.parametrize(
    ("bucket", "headers", "status", "code", "message"),
    [
        ("site", [("origin", "http://evil.org"), ("access-control-request-method", "GET")],
         403, "AccessForbidden", "CORSResponse: This CORS request is not allowed."),
        ("site", [("origin", ORIGIN), ("access-control-request-method", "DELETE")],
         403, "AccessForbidden", "CORSResponse: This CORS request is not allowed."),
        ("plain", [("origin", ORIGIN), ("access-control-request-method", "GET")],
         403, "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket."),
        ("nope", [("origin", ORIGIN), ("access-control-request-method", "GET")],
         403, "AccessForbidden", "CORSResponse: Bucket not found"),
        ("site", [("access-control-request-method", "GET")],
         400, "BadRequest", "Insufficient information. Origin request header needed."),
        ("site", [("origin", ORIGIN)],
         400, "BadRequest", "Invalid Access-Control-Request-Method: null"),
    ],
)  # fmt: skip
async def test_a_preflight_no_rule_allows_is_refused_as_s3_refuses_it(
    app: S3App, bucket: str, headers: list[tuple[str, str]], status: int, code: str, message: str
) -> None:
    await call(app, "PUT", "/site?cors", CORS)
    await call(app, "PUT", "/plain")
    response = await send(app, preflight(f"/{bucket}/k", *headers))
    assert response.status == status
    body = (await body_of(response)).decode()
    assert f"<Code>{code}</Code>" in body
    assert f"<Message>{message}" in body
    assert "access-control-allow-origin" not in dict(response.headers)


async def test_actual_responses_carry_the_rules_answer_errors_too(app: S3App) -> None:
    await call(app, "PUT", "/site?cors", CORS)
    put = await send(app, with_headers(signed("PUT", "/site/a", b"x"), ("origin", ORIGIN)), b"x")
    assert put.status == 200
    headers = dict(put.headers)
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-expose-headers"] == "ETag"
    assert headers["vary"] == VARY
    missing = await send(app, with_headers(signed("GET", "/site/none"), ("origin", ORIGIN)))
    assert missing.status == 404
    assert dict(missing.headers)["access-control-allow-origin"] == ORIGIN
    # DELETE is in no rule: no allow, but the answer still varies by origin.
    deleted = await send(app, with_headers(signed("DELETE", "/site/a"), ("origin", ORIGIN)))
    assert "access-control-allow-origin" not in dict(deleted.headers)
    assert dict(deleted.headers)["vary"] == VARY


async def test_without_origin_or_rules_responses_are_untouched_and_read_no_rules(
    app: S3App, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await call(app, "PUT", "/site?cors", CORS)
    reads = 0
    real = cors.bucket_rules

    async def counting(engine: Engine, bucket: str) -> tuple[corsrules.CorsRule, ...] | None:
        nonlocal reads
        reads += 1
        return await real(engine, bucket)

    # (Access decisions read the bucket's settings too, from the engine's short-lived
    # copy; what is counted here is CORS's own read of its rules.)
    monkeypatch.setattr(cors, "bucket_rules", counting)
    plain = await call(app, "PUT", "/site/a", b"x")
    assert not any(name.startswith("access-control-") for name, _ in plain.headers)
    assert "vary" not in dict(plain.headers)
    assert reads == 0
    await call(app, "PUT", "/other")
    other = await send(app, with_headers(signed("GET", "/other?list-type=2"), ("origin", ORIGIN)))
    assert "vary" not in dict(other.headers)
    assert reads == 1


async def test_rules_changed_elsewhere_apply_at_once(app: S3App, engine: Engine) -> None:
    """Another process serving the registry changes the rules: no cache may hide it."""
    await call(app, "PUT", "/site?cors", CORS)
    await engine.registry.put_bucket_setting("site", "cors", None)
    response = await send(app, preflight(
        "/site/k", ("origin", ORIGIN), ("access-control-request-method", "GET")
    ))  # fmt: skip
    assert response.status == 403


async def test_deleting_the_bucket_deletes_its_rules(app: S3App) -> None:
    await call(app, "PUT", "/site?cors", CORS)
    assert (await call(app, "DELETE", "/site")).status == 204
    assert (await call(app, "PUT", "/site")).status == 200
    assert (await call(app, "GET", "/site?cors")).status == 404
