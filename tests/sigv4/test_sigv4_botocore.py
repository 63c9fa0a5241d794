"""relay's SigV4 agrees with botocore's (the reference signer) on arbitrary requests:
what botocore signs, ``verify`` accepts; what ``sign_headers`` and ``presign_url`` produce
is byte for byte what botocore produces for the same inputs and time."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from unittest import mock
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.sigv4 import SignatureDoesNotMatch, presign_url, sign_headers, verify

HOST = "relay.example:9000"

access_keys = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20)
secrets = st.text(min_size=1, max_size=40)  # any unicode: spaces, '+', '%', '~', '/'...
regions = st.from_regex(r"[a-z]{2}-[a-z]{4,9}-[1-9]", fullmatch=True)
moments = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda moment: moment.replace(microsecond=0)
)
keys = st.text(min_size=1, max_size=30)
# Names that would make a request presigned are tested in test_sigv4_errors.
param_names = st.text(max_size=12).filter(
    lambda name: name not in {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"}
)
query_params = st.lists(st.tuples(param_names, st.text(max_size=12)), max_size=5)
header_names = st.sampled_from(
    [
        "Content-Type",
        "Content-MD5",
        "Range",
        "If-Match",
        "x-amz-meta-color",
        "X-Amz-Meta-Long-Name",
        "x-amz-storage-class",
        "x-amz-checksum-crc32",
        "User-Agent",  # botocore never signs these two
        "Expect",
    ]
)
# Field values as HTTP carries them: visible ASCII, spaces and tabs in odd places.
header_values = st.lists(
    st.sampled_from([*(chr(c) for c in range(0x21, 0x7F)), " ", "   ", "\t"]), max_size=20
).map("".join)
headers = st.dictionaries(header_names, header_values, max_size=5)
methods = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"])


def botocore_signed(
    method: str,
    path: str,
    params: list[tuple[str, str]],
    extra_headers: dict[str, str],
    body: bytes,
    access_key: str,
    secret: str,
    region: str,
    when: datetime,
) -> AWSRequest:
    request = AWSRequest(
        method=method,
        url=f"http://{HOST}{path}",
        headers={"Host": HOST, **extra_headers},
        params=params,
        data=body,
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4Auth(Credentials(access_key, secret), "s3", region).add_auth(request)
    return request


def wire_query(request: AWSRequest) -> str:
    return urlsplit(request.prepare().url).query


def respell(query: str) -> str:
    """The same query as another client might spell it: lowercase %xx, unreserved escaped."""
    spellings = {"a": "%61", "~": "%7e", "-": "%2D"}
    tokens = re.findall(r"%[0-9A-F]{2}|.", query)
    return "".join(
        token.lower() if token.startswith("%") else spellings.get(token, token) for token in tokens
    )


@settings(max_examples=150, deadline=None)
@given(
    method=methods,
    key=keys,
    params=query_params,
    extra_headers=headers,
    body=st.binary(max_size=64),
    access_key=access_keys,
    secret=secrets,
    region=regions,
    when=moments,
    use_date_header=st.booleans(),
)
def test_botocore_signed_requests_verify(
    method: str,
    key: str,
    params: list[tuple[str, str]],
    extra_headers: dict[str, str],
    body: bytes,
    access_key: str,
    secret: str,
    region: str,
    when: datetime,
    use_date_header: bool,
) -> None:
    path = "/bucket/" + quote(key, safe="/~")  # how botocore's serializer writes a key
    if use_date_header:
        extra_headers = {**extra_headers, "Date": "set by botocore"}
    request = botocore_signed(
        method, path, params, extra_headers, body, access_key, secret, region, when
    )
    sent = list(request.headers.items())
    lookup = {access_key: secret}.get
    for query in (wire_query(request), respell(wire_query(request))):
        verified = verify(method, path, query, sent, lookup, when, region=region)
        assert verified.payload == hashlib.sha256(body).hexdigest()
        assert verified.seed_signature == request.headers["Authorization"][-64:]
    try:
        verify(method, path + "x", wire_query(request), sent, lookup, when)
    except SignatureDoesNotMatch:
        pass
    else:
        raise AssertionError("a changed path still verified")


@settings(max_examples=150, deadline=None)
@given(
    method=methods,
    key=keys,
    params=query_params,
    extra_headers=headers,
    body=st.binary(max_size=64),
    access_key=access_keys,
    secret=secrets,
    region=regions,
    when=moments,
)
def test_sign_headers_matches_botocore(
    method: str,
    key: str,
    params: list[tuple[str, str]],
    extra_headers: dict[str, str],
    body: bytes,
    access_key: str,
    secret: str,
    region: str,
    when: datetime,
) -> None:
    path = "/bucket/" + quote(key, safe="/~")
    expected = botocore_signed(
        method, path, params, extra_headers, body, access_key, secret, region, when
    )
    added = sign_headers(
        method,
        HOST,
        path,
        wire_query(expected),
        list(extra_headers.items()),
        payload_hash=hashlib.sha256(body).hexdigest(),
        access_key=access_key,
        secret=secret,
        region=region,
        service="s3",
        now=when.replace(tzinfo=UTC),
    )
    assert dict(added) == {
        "X-Amz-Date": expected.headers["X-Amz-Date"],
        "X-Amz-Content-SHA256": expected.headers["X-Amz-Content-SHA256"],
        "Authorization": expected.headers["Authorization"],
    }


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "HEAD"]),
    scheme=st.sampled_from(["http", "https"]),
    host=st.sampled_from(["bucket.s3.amazonaws.com", "S3.Example.COM:443", "127.0.0.1:9000"]),
    key=keys,
    params=st.dictionaries(param_names, st.text(max_size=10), max_size=4),
    access_key=access_keys,
    secret=secrets,
    region=regions,
    when=moments,
    expires=st.integers(min_value=1, max_value=604800),
)
def test_presign_url_matches_botocore_and_verifies(
    method: str,
    scheme: str,
    host: str,
    key: str,
    params: dict[str, str],
    access_key: str,
    secret: str,
    region: str,
    when: datetime,
    expires: int,
) -> None:
    path = "/" + quote(key, safe="/~")
    request = AWSRequest(method=method, url=f"{scheme}://{host}{path}", params=dict(params))
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4QueryAuth(Credentials(access_key, secret), "s3", region, expires).add_auth(request)
    url = presign_url(
        method,
        scheme,
        host,
        path,
        list(params.items()),
        access_key=access_key,
        secret=secret,
        region=region,
        service="s3",
        now=when,
        expires=expires,
    )
    assert url == request.url
    parts = urlsplit(url)
    # The Host header a client sends for this URL: botocore signed it without the
    # scheme's default port, and clients send it that way.
    sent_host = host.lower().removesuffix(":443") if scheme == "https" else host.lower()
    verified = verify(
        method,
        parts.path,
        parts.query,
        [("Host", sent_host)],
        {access_key: secret}.get,
        when.timestamp() + expires - 1 if when.tzinfo else when.replace(tzinfo=UTC),
    )
    assert verified.presigned
    assert verified.payload == "UNSIGNED-PAYLOAD"
