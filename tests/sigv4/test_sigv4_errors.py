"""Each refusal ``verify`` can give, from a concrete request, with the code and status S3
uses; the Authorization header's two field separators; no secret in any error."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from relay.sigv4 import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    IncompleteBody,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    MalformedChunkedBody,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    SigV4Error,
    VerifiedRequest,
    parse_authorization,
    presign_url,
    sign_headers,
    verify,
)
from relay.sigv4.canonical import signing_key
from relay.sigv4.verify import parse_amz_date

ACCESS_KEY = "AKIDEXAMPLE"
SECRET = "s3cr3t/Do+Not~Leak%20me"
CREDENTIALS = {ACCESS_KEY: SECRET}
NOW = datetime(2026, 11, 21, 8, 38, 54, tzinfo=UTC)
HOST = "127.0.0.1:9000"
PATH = "/bucket/a%20key"
EMPTY = hashlib.sha256(b"").hexdigest()

Headers = list[tuple[str, str]]


def signed(
    *,
    query: str = "",
    extra: Headers | None = None,
    secret: str = SECRET,
    when: datetime = NOW,
    region: str = "us-east-1",
    service: str = "s3",
    payload_hash: str = EMPTY,
) -> Headers:
    headers = [("Host", HOST), *(extra or [])]
    return headers + sign_headers(
        "GET",
        HOST,
        PATH,
        query,
        headers,
        payload_hash=payload_hash,
        access_key=ACCESS_KEY,
        secret=secret,
        region=region,
        service=service,
        now=when,
    )


def check(headers: Headers, query: str = "", now: datetime | float = NOW) -> VerifiedRequest:
    return verify("GET", PATH, query, headers, CREDENTIALS.get, now, region="us-east-1")


def replace_header(headers: Headers, name: str, value: str) -> Headers:
    return [(n, value if n.lower() == name.lower() else v) for n, v in headers]


def without_header(headers: Headers, name: str) -> Headers:
    return [(n, v) for n, v in headers if n.lower() != name.lower()]


def presigned_query(*, expires: int = 3600, when: datetime = NOW) -> str:
    url = presign_url(
        "GET",
        "http",
        HOST,
        PATH,
        [("versionId", "v1")],
        access_key=ACCESS_KEY,
        secret=SECRET,
        region="us-east-1",
        service="s3",
        now=when,
        expires=expires,
    )
    return url.split("?", 1)[1]


def replace_param(query: str, name: str, value: str) -> str:
    return "&".join(
        f"{name}={value}" if part.startswith(name + "=") else part for part in query.split("&")
    )


def test_a_signed_request_verifies_and_reports_what_the_body_decoder_needs() -> None:
    verified = check(signed())
    assert verified.access_key == ACCESS_KEY
    assert verified.payload == EMPTY
    assert verified.scope == "20261121/us-east-1/s3/aws4_request"
    assert verified.timestamp == "20261121T083854Z"
    assert verified.signing_key == signing_key(SECRET, "20261121", "us-east-1", "s3")
    assert not verified.presigned


def test_now_may_be_epoch_seconds_or_a_naive_utc_datetime() -> None:
    check(signed(), now=NOW.timestamp())
    check(signed(), now=NOW.replace(tzinfo=None))


def test_the_date_header_is_used_when_x_amz_date_is_absent() -> None:
    """A request dated only by an RFC 7231 ``Date`` header (signed: date;host;...)."""
    date = format_datetime(NOW, usegmt=True)  # Sat, 21 Nov 2026 08:38:54 GMT
    names = ["date", "host", "x-amz-content-sha256"]
    canonical_request = "\n".join(
        [
            "GET",
            PATH,
            "",
            f"date:{date}\nhost:{HOST}\nx-amz-content-sha256:{EMPTY}\n",
            ";".join(names),
            EMPTY,
        ]
    )
    scope = "20261121/us-east-1/s3/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            "20261121T083854Z",
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = signing_key(SECRET, "20261121", "us-east-1", "s3")
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    request = [
        ("Host", HOST),
        ("Date", date),
        ("x-amz-content-sha256", EMPTY),
        (
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}",
        ),
    ]
    assert check(request).timestamp == "20261121T083854Z"
    with pytest.raises(RequestTimeTooSkewed):
        check(request, now=NOW + timedelta(hours=1))
    with pytest.raises(SignatureDoesNotMatch):
        check(replace_header(request, "Date", format_datetime(NOW + timedelta(seconds=1))))


@pytest.mark.parametrize(
    ("value", "signed_headers"),
    [
        (
            "AWS4-HMAC-SHA256 Credential=AK/20261121/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "ab" * 32,
            ("host", "x-amz-date"),
        ),
        (  # s3cmd separates fields with a bare comma
            "AWS4-HMAC-SHA256 Credential=AK/20261121/us-east-1/s3/aws4_request,"
            "SignedHeaders=host,Signature=" + "AB" * 32,
            ("host",),
        ),
    ],
)
def test_parse_authorization_accepts_both_separators(
    value: str, signed_headers: tuple[str, ...]
) -> None:
    parsed = parse_authorization(value)
    assert parsed.access_key == "AK"
    assert (parsed.date, parsed.region, parsed.service) == ("20261121", "us-east-1", "s3")
    assert parsed.signed_headers == signed_headers
    assert parsed.signature == "ab" * 32


@pytest.mark.parametrize(
    "value",
    [
        "AWS4-HMAC-SHA512 Credential=AK/20261121/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=" + "ab" * 32,
        "AWS4-HMAC-SHA256 Credential=AK/20261121/us-east-1/s3/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=AK/20261121/us-east-1/s3, SignedHeaders=host, Signature="
        + "ab" * 32,
        "AWS4-HMAC-SHA256 Credential=AK/2026-11-21/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=" + "ab" * 32,
        "AWS4-HMAC-SHA256 Credential=AK/20261121/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=abc",
        "AWS4-HMAC-SHA256 Credential=AK/20261121/us-east-1/s3/aws4_request, "
        "SignedHeaders=Host, Signature=" + "ab" * 32,
        "AWS4-HMAC-SHA256 Credential=AK/20261121/us-east-1/s3/aws4_request, SignedHeaders=host, "
        "Signature=" + "ab" * 32 + ", Extra=1",
    ],
)
def test_malformed_authorization_headers_are_typed_errors(value: str) -> None:
    with pytest.raises(AuthorizationHeaderMalformed) as caught:
        parse_authorization(value)
    assert (caught.value.code, caught.value.status) == ("AuthorizationHeaderMalformed", 400)


def test_anonymous_requests_are_refused() -> None:
    with pytest.raises(AccessDenied) as caught:
        check([("Host", HOST)])
    assert (caught.value.code, caught.value.status) == ("AccessDenied", 403)


def test_unknown_access_key() -> None:
    headers = signed()
    authorization = dict(headers)["Authorization"].replace(ACCESS_KEY, "NOSUCHKEY")
    with pytest.raises(InvalidAccessKeyId) as caught:
        check(replace_header(headers, "Authorization", authorization))
    assert (caught.value.code, caught.value.status) == ("InvalidAccessKeyId", 403)


def test_wrong_secret() -> None:
    with pytest.raises(SignatureDoesNotMatch) as caught:
        check(signed(secret="not the secret"))
    assert (caught.value.code, caught.value.status) == ("SignatureDoesNotMatch", 403)
    assert caught.value.canonical_request.startswith("GET\n/bucket/a%20key\n")


@pytest.mark.parametrize("offset_minutes", [-16, 16])
def test_clock_skew_over_fifteen_minutes(offset_minutes: int) -> None:
    check(signed(), now=NOW + timedelta(minutes=offset_minutes * 14 / 16))
    with pytest.raises(RequestTimeTooSkewed) as caught:
        check(signed(), now=NOW + timedelta(minutes=offset_minutes))
    assert (caught.value.code, caught.value.status) == ("RequestTimeTooSkewed", 403)


def test_missing_or_unreadable_date() -> None:
    with pytest.raises(AccessDenied):
        check(without_header(signed(), "x-amz-date"))
    with pytest.raises(AccessDenied):
        check(replace_header(signed(), "x-amz-date", "2026-11-21T08:38:54Z"))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/20261121/", "/20261120/"),  # scope date is not the request date
        ("/s3/", "/ec2/"),  # wrong service
        ("/aws4_request", "/aws4_reqest"),  # wrong terminator
        ("/us-east-1/", "/eu-west-1/"),  # not the region relay serves
    ],
)
def test_bad_credential_scope(old: str, new: str) -> None:
    headers = signed()
    authorization = dict(headers)["Authorization"].replace(old, new)
    with pytest.raises(AuthorizationHeaderMalformed) as caught:
        check(replace_header(headers, "Authorization", authorization))
    assert (caught.value.code, caught.value.status) == ("AuthorizationHeaderMalformed", 400)


def test_any_region_is_accepted_when_none_is_configured() -> None:
    headers = signed(region="eu-west-1")
    verified = verify("GET", PATH, "", headers, CREDENTIALS.get, NOW)
    assert verified.region == "eu-west-1"


def test_host_must_be_signed_and_x_amz_headers_too() -> None:
    headers = signed(extra=[("x-amz-meta-a", "1")])
    with pytest.raises(AccessDenied, match="not signed: x-amz-meta-b"):
        check([*headers, ("x-amz-meta-b", "2")])
    authorization = dict(headers)["Authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    with pytest.raises(AccessDenied, match="host"):
        check(replace_header(headers, "Authorization", authorization))


def test_signed_header_missing_from_the_request() -> None:
    headers = signed(extra=[("Range", "bytes=0-1")])
    with pytest.raises(AccessDenied, match="range"):
        check(without_header(headers, "Range"))


def test_payload_hash_header_is_required_and_checked() -> None:
    with pytest.raises(InvalidRequest, match="x-amz-content-sha256") as caught:
        check(without_header(signed(), "x-amz-content-sha256"))
    assert caught.value.status == 400
    with pytest.raises(InvalidArgument):
        check(signed(payload_hash="STREAMING-SOMETHING-ELSE"))


def test_verify_alone_is_sigv4_only() -> None:
    """SigV2 is ``authenticate``'s to route to ``v2`` (tests/sigv4/test_sigv2.py)."""
    with pytest.raises(InvalidRequest):
        check([("Host", HOST), ("Authorization", "AWS AKIDEXAMPLE:c2lnbmF0dXJl")])


def test_only_one_authentication_mechanism() -> None:
    with pytest.raises(InvalidArgument):
        check(signed(), query=presigned_query())


def test_presigned_url_verifies_until_it_expires() -> None:
    query = presigned_query(expires=60)
    verified = check([("Host", HOST)], query=query, now=NOW + timedelta(seconds=60))
    assert verified.presigned
    assert verified.payload == "UNSIGNED-PAYLOAD"
    with pytest.raises(AccessDenied, match="Request has expired") as caught:
        check([("Host", HOST)], query=query, now=NOW + timedelta(seconds=61))
    assert caught.value.status == 403


def test_presigned_url_from_the_future_is_skewed() -> None:
    with pytest.raises(RequestTimeTooSkewed):
        check([("Host", HOST)], query=presigned_query(), now=NOW - timedelta(minutes=16))


def test_presigned_url_with_a_changed_parameter_fails() -> None:
    query = presigned_query()
    with pytest.raises(SignatureDoesNotMatch):
        check([("Host", HOST)], query=replace_param(query, "versionId", "v2"))
    with pytest.raises(SignatureDoesNotMatch):
        check([("Host", "evil.example")], query=query)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Amz-Expires", "604801"),
        ("X-Amz-Expires", "-5"),
        ("X-Amz-Expires", "ten"),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA1"),
        ("X-Amz-Date", "2026-11-21"),
        ("X-Amz-Credential", "AKIDEXAMPLE%2F20261121%2Fus-east-1%2Fs3"),
        ("X-Amz-Credential", "AKIDEXAMPLE%2F20261120%2Fus-east-1%2Fs3%2Faws4_request"),
        ("X-Amz-Signature", "nothex"),
    ],
)
def test_bad_presigned_parameters(name: str, value: str) -> None:
    with pytest.raises(AuthorizationQueryParametersError) as caught:
        check([("Host", HOST)], query=replace_param(presigned_query(), name, value))
    assert (caught.value.code, caught.value.status) == ("AuthorizationQueryParametersError", 400)


def test_a_presigned_url_valid_for_zero_seconds_has_expired_as_on_aws() -> None:
    with pytest.raises(AccessDenied, match="Request has expired"):
        check([("Host", HOST)], query=replace_param(presigned_query(), "X-Amz-Expires", "0"))


def test_a_missing_presigned_parameter() -> None:
    query = "&".join(p for p in presigned_query().split("&") if not p.startswith("X-Amz-Date="))
    with pytest.raises(AuthorizationQueryParametersError, match="X-Amz-Date"):
        check([("Host", HOST)], query=query)


def test_every_error_has_an_s3_code_and_status() -> None:
    expected = {
        AccessDenied: ("AccessDenied", 403),
        InvalidAccessKeyId: ("InvalidAccessKeyId", 403),
        SignatureDoesNotMatch: ("SignatureDoesNotMatch", 403),
        RequestTimeTooSkewed: ("RequestTimeTooSkewed", 403),
        AuthorizationHeaderMalformed: ("AuthorizationHeaderMalformed", 400),
        AuthorizationQueryParametersError: ("AuthorizationQueryParametersError", 400),
        InvalidRequest: ("InvalidRequest", 400),
        InvalidArgument: ("InvalidArgument", 400),
        MalformedChunkedBody: ("InvalidRequest", 400),
        IncompleteBody: ("IncompleteBody", 400),
    }
    for error, (code, status) in expected.items():
        assert issubclass(error, SigV4Error)
        assert (error.code, error.status) == (code, status)


def failures() -> list[SigV4Error]:
    """One instance of every refusal verify gives, all for requests involving SECRET."""
    headers = signed()
    authorization = dict(headers)["Authorization"]
    cases = [
        lambda: check(signed(secret="wrong")),
        lambda: check(replace_header(headers, "Host", "other")),
        lambda: check(headers, now=NOW + timedelta(hours=1)),
        lambda: check(
            replace_header(headers, "Authorization", authorization.replace("/s3/", "/x/"))
        ),
        lambda: check(
            replace_header(headers, "Authorization", authorization.replace(ACCESS_KEY, "NOPE"))
        ),
        lambda: check(
            replace_header(headers, "Authorization", authorization.replace("Signature=", "Sig="))
        ),
        lambda: check([("Host", HOST)]),
        lambda: check([("Host", HOST)], query=presigned_query(), now=NOW + timedelta(days=1)),
        lambda: check([("Host", "x")], query=presigned_query()),
        lambda: check(
            [("Host", HOST)], query=replace_param(presigned_query(), "X-Amz-Expires", "0")
        ),
    ]
    caught = []
    for case in cases:
        with pytest.raises(SigV4Error) as error:
            case()
        caught.append(error.value)
    return caught


def test_secrets_never_appear_in_errors_or_results() -> None:
    key = signing_key(SECRET, "20261121", "us-east-1", "s3")
    # What the server would compute for the wrong-secret request: must not be revealed.
    wrong = signed(secret="wrong")
    correct_signature = dict(signed())["Authorization"][-64:]
    assert dict(wrong)["Authorization"][-64:] != correct_signature
    forbidden = [SECRET, key.hex(), correct_signature, repr(key)]
    for error in failures():
        texts = [str(error), repr(error), *map(str, error.args)]
        if isinstance(error, SignatureDoesNotMatch):
            texts += [error.canonical_request, error.string_to_sign]
        for text in texts:
            for secret in forbidden:
                assert secret not in text, (type(error).__name__, text)
    verified = check(signed())
    for secret in [*forbidden[:2], repr(key)]:
        assert secret not in repr(verified)
        assert secret not in str(verified)


def test_headers_as_bytes_verify_like_text_even_when_not_ascii() -> None:
    """h11 hands over bytes; a UTF-8 metadata value must canonicalize to the same bytes."""
    headers = signed(extra=[("x-amz-meta-name", "café  au\tlait")])
    as_bytes = [(name.encode(), value.encode()) for name, value in headers]
    assert check(as_bytes) == check(headers)
    changed = [(n, v.replace("café".encode(), b"cafe")) for n, v in as_bytes]
    with pytest.raises(SignatureDoesNotMatch):
        check(changed)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20261121T130512Z", datetime(2026, 11, 21, 13, 5, 12, tzinfo=UTC)),
        ("20240229T235959Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
        ("20261321T130512Z", None),  # month 13
        ("20230229T000000Z", None),  # not a leap year
        ("20261121T250000Z", None),  # hour 25
        ("20261121T130512", None),
        ("2026-11-21T13:05:12Z", None),
        ("٢٠٢٦١١٢١T130512Z", None),  # digits, but not ASCII ones
    ],
)
def test_amz_dates_parse_exactly(value: str, expected: datetime | None) -> None:
    assert parse_amz_date(value) == expected
