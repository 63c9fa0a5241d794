"""The roundabout handler over a real (temporary) SQLite registry, without sockets."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from relay.http import Request, Response
from relay.ipld.cid import CAR, CID, DAG_CBOR
from relay.registry import open_sqlite_registry
from relay.registry.base import Claim
from relay.registry.sqlite import SqliteRegistry
from relay.roundabout.app import RoundaboutApp
from relay.roundabout.config import RoundaboutConfig, parse_roundabout
from relay.roundabout.signing import presigned_get
from relay.sigv4 import UNSIGNED_PAYLOAD, presign_url, sign_headers

ACCOUNT = "0123456789abcdef0123456789abcdef"
NOW = 1_741_964_966.0  # 2025-03-14T15:09:26Z
RELAY_KEYS = {"relaykey": "relaysecret"}
HOST = "roundabout.internal:9100"

DATA = b"the bytes a claim points at"
CID_RAW = CID.raw_sha256(hashlib.sha256(DATA).digest())
MH = CID_RAW.multihash

TABLE: dict[str, Any] = {
    "buckets": [
        {
            "endpoint": f"https://{ACCOUNT}.r2.cloudflarestorage.com",
            "bucket": "carpark",
            "access_key_id": "R2KEY",
            "secret_access_key": "r2secret",
            "preference": 5,
        },
        {
            "bucket": "aws-blobs",
            "region": "eu-west-1",
            "access_key_id": "AWSKEY",
            "secret_access_key": "awssecret",
            "preference": 1,
            "prefix": "blobs/",
            "key_access": True,
        },
    ],
    "domains": [
        {
            "domain": "cdn.example.com",
            "endpoint": f"https://{ACCOUNT}.r2.cloudflarestorage.com",
            "bucket": "carpark",
        }
    ],
}
CONFIG = parse_roundabout(TABLE)
R2, AWS = (next(b for b in CONFIG.buckets if b.bucket == name) for name in ("carpark", "aws-blobs"))


class NoBody:
    """The roundabout never reads a request body."""

    async def read(self, max_bytes: int | None = None) -> bytes:
        raise AssertionError("roundabout read a request body")


def request(
    target: str, method: str = "GET", headers: tuple[tuple[str, str], ...] = (("host", HOST),)
) -> Request:
    path, _, query = target.partition("?")
    return Request(method, target, path, query, headers, "1.1", None)


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SqliteRegistry]:
    async with open_sqlite_registry(tmp_path / "registry.sqlite") as opened:
        yield opened


async def answer(
    registry: SqliteRegistry,
    target: str,
    *,
    method: str = "GET",
    config: RoundaboutConfig = CONFIG,
    headers: tuple[tuple[str, str], ...] = (("host", HOST),),
) -> Response:
    app = RoundaboutApp(registry, config, RELAY_KEYS, clock=lambda: NOW)
    return await app.handle(request(target, method, headers), NoBody())  # type: ignore[arg-type]


def location(response: Response) -> str:
    assert response.status == 302, response.body
    values = [value for name, value in response.headers if name == "location"]
    assert len(values) == 1
    assert response.body == b""
    return values[0]


def message(response: Response) -> str:
    assert isinstance(response.body, bytes)
    return response.body.decode()


async def test_a_raw_cid_redirects_to_a_presigned_url_valid_for_three_days(
    registry: SqliteRegistry,
) -> None:
    await registry.add_claims([Claim(MH, f"https://carpark.{ACCOUNT}.r2.cloudflarestorage.com/x")])
    url = location(await answer(registry, f"/{CID_RAW}"))
    assert url == presigned_get(R2, "x", now=NOW, expires_seconds=259200)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["259200"]
    assert query["X-Amz-Date"] == ["20250314T150926Z"]
    assert urlsplit(url).hostname == f"carpark.{ACCOUNT}.r2.cloudflarestorage.com"


async def test_the_claim_url_form_does_not_matter_the_redirect_is_virtual_hosted(
    registry: SqliteRegistry,
) -> None:
    await registry.add_claims([Claim(MH, f"https://{ACCOUNT}.r2.cloudflarestorage.com/carpark/x")])
    url = location(await answer(registry, f"/{CID_RAW}"))
    assert url == presigned_get(R2, "x", now=NOW, expires_seconds=259200)


async def test_head_answers_the_same_redirect(registry: SqliteRegistry) -> None:
    await registry.add_claims([Claim(MH, "https://cdn.example.com/x")])
    get = location(await answer(registry, f"/{CID_RAW}"))
    head = location(await answer(registry, f"/{CID_RAW}", method="HEAD"))
    assert head == get == presigned_get(R2, "x", now=NOW, expires_seconds=259200)


@pytest.mark.parametrize("expires", ["1", "604800", "3600", "007"])
async def test_expires_in_range_is_what_the_url_says(
    registry: SqliteRegistry, expires: str
) -> None:
    await registry.add_claims([Claim(MH, "https://cdn.example.com/x")])
    url = location(await answer(registry, f"/{CID_RAW}?expires={expires}"))
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == [str(int(expires))]


@pytest.mark.parametrize(
    "query", ["expires=0", "expires=604801", "expires=abc", "expires=1.5", "expires=",
              "expires=-1", "expires=%205", "expires=1e3", "expires=%EF%BC%95",
              "expires=5&expires=6"],
)  # fmt: skip
async def test_bad_expires_is_400_with_a_message(registry: SqliteRegistry, query: str) -> None:
    await registry.add_claims([Claim(MH, "https://cdn.example.com/x")])
    for target in (f"/{CID_RAW}?{query}", f"/key/x?bucket=carpark&{query}"):
        response = await answer(registry, target)
        assert response.status == 400
        assert "expires" in message(response)


@pytest.mark.parametrize(
    "text", ["not-a-cid", "bafyINVALID", "zzzz", "Qm" + "1" * 44, str(CID_RAW)[:-2]]
)
async def test_an_invalid_cid_is_400(registry: SqliteRegistry, text: str) -> None:
    response = await answer(registry, f"/{text}")
    assert response.status == 400
    assert "CID" in message(response)


async def test_a_cid_of_another_codec_is_400(registry: SqliteRegistry) -> None:
    await registry.add_claims([Claim(MH, "https://cdn.example.com/x")])
    response = await answer(registry, f"/{CID.v1(DAG_CBOR, MH)}")
    assert response.status == 400
    assert "0x71" in message(response)


async def test_a_cid_without_claims_is_404(registry: SqliteRegistry) -> None:
    await registry.add_claims([Claim(MH, "https://cdn.example.com/x")])
    other = CID.raw_sha256(hashlib.sha256(b"other").digest())
    response = await answer(registry, f"/{other}")
    assert response.status == 404
    assert "no location claim" in message(response)


async def test_only_ranged_claims_is_a_404_that_says_why(registry: SqliteRegistry) -> None:
    await registry.add_claims(
        [
            Claim(MH, "https://cdn.example.com/pack.car", offset=100, length=len(DATA)),
            Claim(MH, "https://example.net/pack2.car", offset=0, length=len(DATA)),
        ]
    )
    response = await answer(registry, f"/{CID_RAW}")
    assert response.status == 404
    assert "byte-range" in message(response)
    assert "redirect" in message(response)


async def test_a_whole_claim_wins_over_ranged_ones(registry: SqliteRegistry) -> None:
    await registry.add_claims(
        [
            Claim(MH, "https://cdn.example.com/pack.car", offset=100, length=len(DATA)),
            Claim(MH, "https://mirror.example.net/whole", offset=0),
        ]
    )
    assert location(await answer(registry, f"/{CID_RAW}")) == "https://mirror.example.net/whole"


async def test_a_car_cid_uses_the_claims_of_its_multihash(registry: SqliteRegistry) -> None:
    car_bytes = b"a CAR file, as far as roundabout cares"
    car_mh = CID.raw_sha256(hashlib.sha256(car_bytes).digest()).multihash
    car_cid = CID.v1(CAR, car_mh)
    assert str(car_cid).startswith("bagbaiera")
    await registry.add_claims(
        [Claim(car_mh, f"https://carpark.{ACCOUNT}.r2.cloudflarestorage.com/c.car")]
    )
    url = location(await answer(registry, f"/{car_cid}"))
    assert url == presigned_get(R2, "c.car", now=NOW, expires_seconds=259200)


async def test_the_configured_preference_picks_among_signable_claims(
    registry: SqliteRegistry,
) -> None:
    # R2 sorts first by URL, but aws-blobs has the lower (preferred) rank.
    await registry.add_claims(
        [
            Claim(MH, "https://aws-blobs.s3.eu-west-1.amazonaws.com/blobs/x"),
            Claim(MH, f"https://carpark.{ACCOUNT}.r2.cloudflarestorage.com/x"),
        ]
    )
    url = location(await answer(registry, f"/{CID_RAW}"))
    assert url == presigned_get(AWS, "blobs/x", now=NOW, expires_seconds=259200)
    swapped = dict(TABLE, buckets=[dict(TABLE["buckets"][0], preference=0), TABLE["buckets"][1]])
    url = location(await answer(registry, f"/{CID_RAW}", config=parse_roundabout(swapped)))
    assert url.startswith(f"https://carpark.{ACCOUNT}.r2.cloudflarestorage.com/x?")


async def test_signable_claims_come_before_unsignable_ones(registry: SqliteRegistry) -> None:
    await registry.add_claims(
        [
            Claim(MH, "https://aaa.example.com/first-by-url"),
            Claim(MH, "https://cdn.example.com/x"),
        ]
    )
    url = location(await answer(registry, f"/{CID_RAW}"))
    assert url == presigned_get(R2, "x", now=NOW, expires_seconds=259200)


async def test_an_unsignable_url_is_redirected_to_as_it_is(registry: SqliteRegistry) -> None:
    claimed = [
        "https://someone-elses.s3.amazonaws.com/k%20x?versionId=1",  # query: never re-signed
        f"https://pub-{'a' * 32}.r2.dev/k",
        "https://aws-blobs.s3.eu-west-1.amazonaws.com/outside-prefix",
    ]
    for url in claimed:
        mh = CID.raw_sha256(hashlib.sha256(url.encode()).digest()).multihash
        await registry.add_claims([Claim(mh, url)])
        assert location(await answer(registry, f"/{CID.v1(0x55, mh)}")) == url


async def test_unsignable_claims_go_by_url_order(registry: SqliteRegistry) -> None:
    await registry.add_claims(
        [Claim(MH, "https://b.example.com/x"), Claim(MH, "https://a.example.com/x")]
    )
    assert location(await answer(registry, f"/{CID_RAW}")) == "https://a.example.com/x"


async def test_claims_nobody_can_follow_are_404(registry: SqliteRegistry) -> None:
    await registry.add_claims(
        [
            Claim(MH, "s3://not-configured/k"),
            Claim(MH, "https://s3.amazonaws.com@evil.com/aws-blobs/blobs/x"),
            Claim(MH, "ftp://example.com/x"),
        ]
    )
    response = await answer(registry, f"/{CID_RAW}")
    assert response.status == 404


async def test_key_route_presigns_prefix_and_key_in_the_named_bucket(
    registry: SqliteRegistry,
) -> None:
    key = "dir/ünï code+plus.car"
    url = location(await answer(registry, f"/key/{quote(key)}?bucket=aws-blobs&expires=60"))
    assert url == presigned_get(AWS, "blobs/" + key, now=NOW, expires_seconds=60)
    assert urlsplit(url).path == "/blobs/" + quote(key, safe="/~")


async def test_key_route_refuses_a_bucket_without_key_access(registry: SqliteRegistry) -> None:
    # carpark is configured for claims, but relay keeps every tenant's blobs there: a key
    # nobody claimed must not be presigned there.
    response = await answer(registry, "/key/private/db-backup.sql?bucket=carpark")
    assert response.status == 403
    assert "key_access" in message(response)
    assert not [value for name, value in response.headers if name == "location"]


async def test_key_access_is_per_bucket_entry(registry: SqliteRegistry) -> None:
    # Two entries for one bucket: the one marked answers /key/, whatever the preference.
    table = dict(TABLE, buckets=[dict(TABLE["buckets"][0], key_access=True), TABLE["buckets"][0]])
    config = parse_roundabout(table)
    url = location(await answer(registry, "/key/k?bucket=carpark", config=config))
    assert url == presigned_get(config.buckets[0], "k", now=NOW, expires_seconds=259200)


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/key/x?bucket=unknown", 404),
        ("/key/x", 400),
        ("/key/x?bucket=", 400),
        ("/key/x?bucket=carpark&bucket=aws-blobs", 400),
        ("/key/?bucket=carpark", 400),
        ("/key/%FF?bucket=carpark", 400),
        ("/", 404),
        (f"/{CID_RAW}/extra", 404),
    ],
)
async def test_key_and_path_errors(registry: SqliteRegistry, target: str, status: int) -> None:
    response = await answer(registry, target)
    assert response.status == status
    assert message(response).strip()


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE"])
async def test_other_methods_are_405(registry: SqliteRegistry, method: str) -> None:
    response = await answer(registry, f"/{CID_RAW}", method=method)
    assert response.status == 405
    assert ("allow", "GET, HEAD") in response.headers


# These claims are in no bucket; what a key may reach is test_roundabout_reach.py's subject.
AUTH_CONFIG = parse_roundabout(
    dict(TABLE, require_auth=True, grants=[{"access_key_id": "relaykey", "buckets": ["*"]}])
)


async def test_unsigned_requests_are_403_when_auth_is_required(registry: SqliteRegistry) -> None:
    await registry.add_claims([Claim(MH, "https://cdn.example.com/x")])
    response = await answer(registry, f"/{CID_RAW}", config=AUTH_CONFIG)
    assert response.status == 403
    assert "AccessDenied" in message(response)
    # ... and the same request is answered when auth is off (the default)
    assert (await answer(registry, f"/{CID_RAW}")).status == 302


def signed_headers(path: str, query: str, secret: str) -> tuple[tuple[str, str], ...]:
    added = sign_headers(
        "GET", HOST, path, query, [("host", HOST)],
        payload_hash=UNSIGNED_PAYLOAD, access_key="relaykey", secret=secret,
        region="us-east-1", service="s3", now=NOW,
    )  # fmt: skip
    return (("host", HOST), *((name.lower(), value) for name, value in added))


async def test_signed_requests_are_answered_when_auth_is_required(
    registry: SqliteRegistry,
) -> None:
    await registry.add_claims([Claim(MH, "https://cdn.example.com/x")])
    path = f"/{CID_RAW}"
    ok = await answer(
        registry, path + "?expires=60", config=AUTH_CONFIG,
        headers=signed_headers(path, "expires=60", "relaysecret"),
    )  # fmt: skip
    assert location(ok) == presigned_get(R2, "x", now=NOW, expires_seconds=60)
    forged = await answer(
        registry, path + "?expires=60", config=AUTH_CONFIG,
        headers=signed_headers(path, "expires=60", "wrong"),
    )  # fmt: skip
    assert forged.status == 403
    assert "SignatureDoesNotMatch" in message(forged)


async def test_a_presigned_roundabout_url_is_accepted(registry: SqliteRegistry) -> None:
    await registry.add_claims([Claim(MH, "https://cdn.example.com/x")])
    url = presign_url(
        "GET", "http", HOST, f"/{CID_RAW}", [("expires", "60")],
        access_key="relaykey", secret="relaysecret", region="us-east-1", service="s3",
        now=NOW, expires=300,
    )  # fmt: skip
    target = url.removeprefix(f"http://{HOST}")
    response = await answer(registry, target, config=AUTH_CONFIG)
    assert location(response) == presigned_get(R2, "x", now=NOW, expires_seconds=60)


def test_required_auth_without_keys_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="require_auth"):
        RoundaboutApp(None, AUTH_CONFIG, None)  # type: ignore[arg-type]
