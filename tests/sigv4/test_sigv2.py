"""relay's SigV2 agrees with botocore's SigV2 signers (``HmacV1Auth``, ``HmacV1QueryAuth``,
the reference for S3's legacy signature) on arbitrary requests, path-style and
virtual-hosted, and with AWS's own RESTAuthentication examples; and it refuses what S3
refuses, with S3's codes."""

from __future__ import annotations

import time
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.sigv4 import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    authenticate,
    claimed_access_key,
    v2,
)

DOMAIN = "s3.relay.test"
PORT_HOST = f"{DOMAIN}:9000"

access_keys = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20)
secrets = st.text(min_size=1, max_size=40)  # any unicode: spaces, '+', '%', '~', '/'...
buckets = st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True)
keys = st.text(min_size=1, max_size=30)
# Sub-resources (signed) mixed with ordinary parameters (not signed), bare or with values.
param_names = st.one_of(
    st.sampled_from(sorted(v2.SUBRESOURCES)),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10),
)
query_params = st.lists(st.tuples(param_names, st.none() | st.text(max_size=12)), max_size=5)
header_names = st.sampled_from(
    [
        "Content-Type",
        "Content-MD5",
        "Range",
        "x-amz-meta-color",
        "X-Amz-Meta-Long-Name",
        "x-amz-storage-class",
        "x-amz-acl",
        "User-Agent",
    ]
)
# Field values as HTTP carries them: visible ASCII and UTF-8 text, spaces at the ends.
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_characters="\x7f"),
    max_size=20,
)
headers = st.dictionaries(header_names, header_values, max_size=5)
methods = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"])


def wire_query(params: list[tuple[str, str | None]]) -> str:
    """A query as clients write it: each name and value percent-encoded, a bare name alone."""
    return "&".join(
        percent_encode(name) if value is None else f"{percent_encode(name)}={percent_encode(value)}"
        for name, value in params
    )


def botocore_request(
    method: str,
    bucket: str,
    key: str,
    params: list[tuple[str, str | None]],
    extra_headers: dict[str, str],
    *,
    virtual: bool,
) -> AWSRequest:
    """A request as botocore builds it for each addressing style: for virtual-hosted, the
    bucket moves into the Host and botocore signs ``auth_path`` (``/bucket/key``)."""
    key_path = "/" + percent_encode(key, safe="/~")
    query = wire_query(params)
    suffix = f"?{query}" if query else ""
    if virtual:
        request = AWSRequest(
            method=method,
            url=f"http://{bucket}.{PORT_HOST}{key_path}{suffix}",
            headers={"Host": f"{bucket}.{PORT_HOST}", **extra_headers},
        )
        request.auth_path = f"/{bucket}{key_path}"
    else:
        request = AWSRequest(
            method=method,
            url=f"http://{PORT_HOST}/{bucket}{key_path}{suffix}",
            headers={"Host": PORT_HOST, **extra_headers},
        )
    return request


def bucket_from_host(netloc: str, domains: list[str]) -> str | None:
    """The bucket in a virtual-hosted URL's host (relay's routing does this for real)."""
    name = netloc.partition(":")[0]
    for domain in domains:
        if name.endswith("." + domain):
            return name.removesuffix("." + domain)
    return None


def sent(request: AWSRequest) -> tuple[str, str, list[tuple[str, str]], str | None]:
    parts = urlsplit(request.url)
    host_bucket = bucket_from_host(parts.netloc, [DOMAIN])
    return parts.path, parts.query, list(request.headers.items()), host_bucket


@settings(max_examples=150, deadline=None)
@given(
    method=methods,
    bucket=buckets,
    key=keys,
    params=query_params,
    extra_headers=headers,
    access_key=access_keys,
    secret=secrets,
    virtual=st.booleans(),
)
def test_botocore_header_signed_requests_verify(
    method: str,
    bucket: str,
    key: str,
    params: list[tuple[str, str | None]],
    extra_headers: dict[str, str],
    access_key: str,
    secret: str,
    virtual: bool,
) -> None:
    request = botocore_request(method, bucket, key, params, extra_headers, virtual=virtual)
    HmacV1Auth(Credentials(access_key, secret)).add_auth(request)
    path, query, wire_headers, host_bucket = sent(request)
    assert host_bucket == (bucket if virtual else None)
    lookup = {access_key: secret}.get
    verified = authenticate(
        method, path, query, wire_headers, lookup, time.time(), host_bucket=host_bucket
    )
    assert verified.access_key == access_key
    assert not verified.presigned
    assert verified.payload == "UNSIGNED-PAYLOAD"
    # The other addressing style, another path or a changed sub-resource: not what was signed.
    tampered = [
        (path, query, None if virtual else bucket),
        (path + "x", query, host_bucket),
        (path, query + "&versionId=1", host_bucket),
    ]
    for other_path, other_query, other_bucket in tampered:
        with pytest.raises(SignatureDoesNotMatch):
            authenticate(
                method,
                other_path,
                other_query,
                wire_headers,
                lookup,
                time.time(),
                host_bucket=other_bucket,
            )


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "HEAD", "DELETE"]),
    bucket=buckets,
    key=keys,
    params=query_params,
    extra_headers=st.dictionaries(
        st.sampled_from(["Content-Type", "Content-MD5", "x-amz-meta-color", "x-amz-acl"]),
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12),
        max_size=3,
    ),
    access_key=access_keys,
    secret=secrets,
    virtual=st.booleans(),
    expires=st.integers(min_value=1, max_value=10 * 365 * 24 * 3600),
)
def test_botocore_presigned_urls_verify_until_they_expire(
    method: str,
    bucket: str,
    key: str,
    params: list[tuple[str, str | None]],
    extra_headers: dict[str, str],
    access_key: str,
    secret: str,
    virtual: bool,
    expires: int,
) -> None:
    request = botocore_request(method, bucket, key, params, extra_headers, virtual=virtual)
    HmacV1QueryAuth(Credentials(access_key, secret), expires).add_auth(request)
    path, query, _, host_bucket = sent(request)
    # A client fetching the URL sends only Host (and the headers it was presigned with,
    # which botocore also wrote into the query: those are what count).
    host = [("Host", urlsplit(request.url).netloc)]
    lookup = {access_key: secret}.get
    verified = authenticate(method, path, query, host, lookup, time.time(), host_bucket=host_bucket)
    assert verified.presigned
    assert verified.access_key == access_key
    expires_at = int(
        dict(pair.split("=", 1) for pair in query.split("&") if "=" in pair)["Expires"]
    )
    with pytest.raises(AccessDenied, match="Request has expired"):
        authenticate(method, path, query, host, lookup, expires_at + 1, host_bucket=host_bucket)
    with pytest.raises(SignatureDoesNotMatch):
        authenticate(method, path + "x", query, host, lookup, time.time(), host_bucket=host_bucket)


@pytest.mark.parametrize("addressing_style", ["path", "virtual"])
@pytest.mark.parametrize("operation", ["get_object", "put_object"])
def test_boto3_default_presigned_urls_are_sigv2_and_verify(
    addressing_style: str, operation: str
) -> None:
    """boto3's generate_presigned_url with default settings, for a custom endpoint in
    us-east-1, writes a SigV2 URL (``AWSAccessKeyId``, ``Expires``, ``Signature``)."""
    client = boto3.session.Session(
        aws_access_key_id="AKIDRELAY", aws_secret_access_key="s3cr3t/+=", region_name="us-east-1"
    ).client(
        "s3",
        endpoint_url=f"http://{PORT_HOST}",
        config=Config(s3={"addressing_style": addressing_style}),
    )
    params = {"Bucket": "photos", "Key": "2026/a b+c.jpg"}
    if operation == "put_object":
        params["ContentType"] = "image/jpeg"
    url = client.generate_presigned_url(operation, Params=params)
    parts = urlsplit(url)
    assert "AWSAccessKeyId=AKIDRELAY" in parts.query
    host_bucket = bucket_from_host(parts.netloc, [DOMAIN])
    assert host_bucket == ("photos" if addressing_style == "virtual" else None)
    method = "PUT" if operation == "put_object" else "GET"
    request_headers = [("Host", parts.netloc)]
    if operation == "put_object":
        request_headers.append(("Content-Type", "image/jpeg"))
    verified = authenticate(
        method, parts.path, parts.query, request_headers, {"AKIDRELAY": "s3cr3t/+="}.get,
        time.time(), host_bucket=host_bucket,
    )  # fmt: skip
    assert verified.presigned


# AWS's RESTAuthentication examples (the "johnsmith" bucket, virtual-hosted).
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "signature"),
    [
        ("GET", "/photos/puppy.jpg", "", [("Date", "Tue, 27 Mar 2007 19:36:42 +0000")],
         "bWq2s1WEIj+Ydj0vQ697zp+IXMU="),
        ("PUT", "/photos/puppy.jpg", "",
         [("Content-Type", "image/jpeg"), ("Content-Length", "94328"),
          ("Date", "Tue, 27 Mar 2007 21:15:45 +0000")],
         "MyyxeRY7whkBe+bq8fHCL/2kKUg="),
        ("GET", "/", "prefix=photos&max-keys=50&marker=puppy",
         [("User-Agent", "Mozilla/5.0"), ("Date", "Tue, 27 Mar 2007 19:42:41 +0000")],
         "htDYFYduRNen8P9ZfE/s9SuKy0U="),
        ("GET", "/", "acl", [("Date", "Tue, 27 Mar 2007 19:44:46 +0000")],
         "c2WLPFtWHVgbEmeEG93a4cG37dM="),
    ],
)  # fmt: skip
def test_aws_documentation_examples_verify(
    method: str, path: str, query: str, headers: list[tuple[str, str]], signature: str
) -> None:
    date = dict(headers)["Date"]
    request_headers = [
        ("Host", "johnsmith.s3.amazonaws.com"),
        *headers,
        ("Authorization", f"AWS {AWS_KEY}:{signature}"),
    ]
    verified = authenticate(
        method, path, query, request_headers, {AWS_KEY: AWS_SECRET}.get,
        parsedate_to_datetime(date).timestamp(), host_bucket="johnsmith",
    )  # fmt: skip
    assert verified.access_key == AWS_KEY


def header_signed(
    string_to_sign: str, headers: list[tuple[str, str]], secret: str = AWS_SECRET
) -> list[tuple[str, str]]:
    return [*headers, ("Authorization", f"AWS {AWS_KEY}:{v2.signature(secret, string_to_sign)}")]


NOW = 1796540000.0
NOW_DATE = formatdate(NOW, usegmt=True)


def check(
    headers: list[tuple[str, str]], *, path: str = "/b/k", query: str = "", now: float = NOW
) -> object:
    return authenticate("GET", path, query, headers, {AWS_KEY: AWS_SECRET}.get, now)


def test_x_amz_date_empties_the_date_line() -> None:
    """With x-amz-date the Date line is empty and the time is signed as an x-amz-* header
    (the string to sign of AWS's DELETE example)."""
    amz_date = "Tue, 27 Mar 2007 21:20:26 +0000"
    expected = f"DELETE\n\n\n\nx-amz-date:{amz_date}\n/johnsmith/photos/puppy.jpg"
    headers = [("Host", "s3.amazonaws.com"), ("Date", "Tue, 27 Mar 2007 21:20:27 +0000"),
               ("x-amz-date", amz_date)]  # fmt: skip
    now = parsedate_to_datetime(amz_date).timestamp()
    verified = authenticate(
        "DELETE", "/johnsmith/photos/puppy.jpg", "", header_signed(expected, headers),
        {AWS_KEY: AWS_SECRET}.get, now,
    )  # fmt: skip
    assert verified.access_key == AWS_KEY
    # x-amz-date also sets the clock: 16 minutes later it is too old, whatever Date says.
    with pytest.raises(RequestTimeTooSkewed):
        authenticate(
            "DELETE", "/johnsmith/photos/puppy.jpg", "", header_signed(expected, headers),
            {AWS_KEY: AWS_SECRET}.get, now + 16 * 60,
        )  # fmt: skip


def test_a_wrong_signature_answers_the_string_to_sign() -> None:
    headers = [("Host", PORT_HOST), ("Date", NOW_DATE), ("x-amz-meta-a", " b ")]
    expected = f"GET\n\n\n{NOW_DATE}\nx-amz-meta-a:b\n/b/k?acl"
    wrong = header_signed(expected, headers, secret="not the secret")
    with pytest.raises(SignatureDoesNotMatch) as caught:
        check(wrong, query="acl&max-keys=3")
    assert caught.value.status == 403
    assert caught.value.extra["StringToSign"] == expected
    assert caught.value.extra["StringToSignBytes"].startswith("47 45 54 0a")  # "GET\n"
    assert caught.value.extra["AWSAccessKeyId"] == AWS_KEY
    assert all(
        v2.signature(AWS_SECRET, expected) not in value for value in caught.value.extra.values()
    )
    assert check(header_signed(expected, headers), query="acl&max-keys=3")


def test_unknown_access_key_is_invalid_access_key_id() -> None:
    headers = [
        ("Host", PORT_HOST),
        ("Date", NOW_DATE),
        ("Authorization", "AWS NOBODY:c2lnbmF0dXJlcw=="),
    ]
    with pytest.raises(InvalidAccessKeyId) as caught:
        check(headers)
    assert caught.value.status == 403
    expired = "AWSAccessKeyId=NOBODY&Expires=1796539000&Signature=x"
    with pytest.raises(AccessDenied, match="Request has expired") as expired_error:
        check([("Host", PORT_HOST)], query=expired)
    assert expired_error.value.extra == {
        "Expires": "2026-12-06T06:36:40Z",
        "ServerTime": "2026-12-06T06:53:20Z",
    }
    with pytest.raises(InvalidAccessKeyId):
        check([("Host", PORT_HOST)], query="AWSAccessKeyId=NOBODY&Expires=1796549000&Signature=x")


def test_header_form_needs_a_recent_date() -> None:
    expected = f"GET\n\n\n{NOW_DATE}\n/b/k"
    with pytest.raises(AccessDenied, match="Date or x-amz-date"):
        check(header_signed(expected, [("Host", PORT_HOST)]))
    with pytest.raises(AccessDenied, match="Date or x-amz-date"):
        check(header_signed(expected, [("Host", PORT_HOST), ("Date", "yesterday")]))
    with pytest.raises(RequestTimeTooSkewed):
        check(header_signed(expected, [("Host", PORT_HOST), ("Date", NOW_DATE)]), now=NOW + 901)
    assert check(header_signed(expected, [("Host", PORT_HOST), ("Date", NOW_DATE)]), now=NOW - 900)


@pytest.mark.parametrize(
    ("headers", "query", "error"),
    [
        ([("Authorization", "AWS AKIDONLY")], "", InvalidArgument),
        ([("Authorization", "AWS :sig")], "", InvalidArgument),
        ([], "AWSAccessKeyId=A&Signature=x", AccessDenied),  # no Expires
        ([], "AWSAccessKeyId=A&Expires=soon&Signature=x", AccessDenied),
        ([], "AWSAccessKeyId=A&AWSAccessKeyId=B&Expires=1&Signature=x", InvalidArgument),
        # Two mechanisms at once, whichever way round.
        ([("Authorization", "AWS A:sig")], "AWSAccessKeyId=A&Expires=1&Signature=x",
         InvalidArgument),
        ([("Authorization", "AWS A:sig")], "X-Amz-Signature=00", InvalidArgument),
        # aws-chunked signing chains from a SigV4 seed signature: SigV2 has none.
        ([("Authorization", "AWS A:sig"),
          ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")], "", InvalidRequest),
    ],
)  # fmt: skip
def test_malformed_sigv2_is_refused(
    headers: list[tuple[str, str]], query: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check([("Host", PORT_HOST), ("Date", NOW_DATE), *headers], query=query)


def test_an_unescaped_plus_in_a_query_signature_still_verifies() -> None:
    expires = str(int(NOW) + 60)
    for secret in (f"secret{n}" for n in range(40)):
        good = v2.signature(secret, f"GET\n\n\n{expires}\n/b/k")
        if "+" in good:
            break
    raw_query = f"AWSAccessKeyId={AWS_KEY}&Expires={expires}&Signature={good}"
    assert authenticate("GET", "/b/k", raw_query, [("Host", PORT_HOST)], {AWS_KEY: secret}.get, NOW)


def test_the_log_names_the_key_a_sigv2_request_claims() -> None:
    assert claimed_access_key([("Authorization", "AWS AKIDV2:sig")], "") == "AKIDV2"
    assert claimed_access_key([], "AWSAccessKeyId=AKIDQ&Expires=1&Signature=x") == "AKIDQ"
    assert claimed_access_key([], "") == ""


def test_the_signed_sub_resources_are_botocores() -> None:
    assert set(HmacV1Auth.QSAOfInterest) == v2.SUBRESOURCES


@pytest.mark.parametrize("signed_resource", ["/b/", "/b"])
def test_a_bucket_is_signed_with_or_without_its_trailing_slash(signed_resource: str) -> None:
    """botocore signs ``/b/`` for a path-style ``PUT /b`` (CreateBucket); others sign the
    path as sent. Both name the bucket."""
    headers = [("Host", PORT_HOST), ("Date", NOW_DATE)]
    assert check(header_signed(f"GET\n\n\n{NOW_DATE}\n{signed_resource}", headers), path="/b")
    with pytest.raises(SignatureDoesNotMatch) as caught:
        check(header_signed(f"GET\n\n\n{NOW_DATE}\n/c/", headers), path="/b")
    assert caught.value.extra["StringToSign"].endswith("\n/b/")


def test_a_sigv4_signature_mismatch_answers_its_canonical_request() -> None:
    from relay.sigv4 import sign_headers

    headers = [("Host", PORT_HOST)]
    headers += sign_headers(
        "GET", PORT_HOST, "/b/k", "", headers, payload_hash="UNSIGNED-PAYLOAD",
        access_key=AWS_KEY, secret="wrong", region="us-east-1", service="s3", now=NOW,
    )  # fmt: skip
    with pytest.raises(SignatureDoesNotMatch) as caught:
        check(headers)
    extra = caught.value.extra
    assert extra["CanonicalRequest"].startswith("GET\n/b/k\n\nhost:")
    assert extra["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
    assert (
        bytes.fromhex(extra["CanonicalRequestBytes"].replace(" ", "")).decode()
        == (extra["CanonicalRequest"])
    )
