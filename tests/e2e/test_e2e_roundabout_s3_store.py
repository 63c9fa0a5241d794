"""The whole loop of roundabout: objects go in through relay's S3 API onto an S3 upstream,
relay records where each chunk went, and roundabout sends a plain HTTP client there.

relay runs with ``store.kind = "s3"`` pointed at a second relay process on loopback (the
"upstream": moto in its signature-checking mode cannot serve presigned URLs) and with
roundabout configured to presign for that upstream bucket. A client that knows nothing of
S3 follows roundabout's redirect for a chunk CID and gets bytes that hash to that CID.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config as BotoConfig
from e2e_helpers import ACCESS_KEY, SECRET_KEY, RelayProcess, boto_client, start_relay, stop_relay

from relay.ipld.cid import CID
from relay.sigv4 import presign_url

MiB = 1 << 20


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def ask(endpoint: str, target: str) -> tuple[int, str | None]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(endpoint + target, timeout=30) as response:
            return response.status, response.headers.get("location")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("location")


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    relay = start_relay(tmp_path_factory.mktemp("upstream"))
    try:
        yield relay
    finally:
        assert stop_relay(relay.process) == 0, relay.log()[-3000:]


@pytest.fixture(scope="module")
def relay_on_s3(
    upstream: RelayProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RelayProcess, str]]:
    bucket = "carpark"
    boto_client(upstream).create_bucket(Bucket=bucket)
    base = tmp_path_factory.mktemp("relay")
    config = base / "relay.toml"
    upstream_settings = (
        f'endpoint = "{upstream.endpoint}"\nbucket = "{bucket}"\n'
        f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n'
    )
    config.write_text(
        '[[credentials]]\naccess_key_id = "test"\nsecret_access_key = "test"\n'
        f'[store]\nkind = "s3"\n[store.s3]\nregion = "us-east-1"\n{upstream_settings}'
        f'[roundabout]\nlisten = "127.0.0.1:0"\n[[roundabout.buckets]]\n'
        f'region = "us-east-1"\n{upstream_settings}'
    )
    relay = start_relay(base, config=config)
    try:
        yield relay, re.search(r"serving roundabout at (http://\S+)", relay.log()).group(1)  # type: ignore[union-attr]
    finally:
        assert stop_relay(relay.process) == 0, relay.log()[-3000:]


def test_a_chunk_put_through_s3_comes_back_through_roundabout(
    relay_on_s3: tuple[RelayProcess, str],
) -> None:
    relay, roundabout = relay_on_s3
    s3 = boto_client(relay)
    s3.create_bucket(Bucket="photos")
    small = b"one chunk of photo bytes " * 1000
    big = bytes(range(256)) * (3 * MiB // 256 + 7)
    s3.put_object(Bucket="photos", Key="small.jpg", Body=small)
    s3.put_object(Bucket="photos", Key="big.raw", Body=big)

    # An object of one chunk: its UnixFS root, on HEAD, is the chunk's CID.
    head = s3.head_object(Bucket="photos", Key="small.jpg")
    cid = head["ResponseMetadata"]["HTTPHeaders"]["x-unixfs-cid"]
    assert CID.decode(cid).codec == 0x55
    status, location = ask(roundabout, f"/{cid}")
    assert status == 302, status
    assert location is not None
    assert not location.startswith(relay.endpoint), "the bytes come from the upstream"
    got_status, got = fetch(location)
    assert got_status == 200, (location, got[:2000])
    assert CID.raw_sha256(hashlib.sha256(got).digest()) == CID.decode(cid)

    # A larger object: `relay ls --cids` names its chunks; each one redirects to its bytes.
    listing = subprocess.run(
        [sys.executable, "-m", "relay", "ls", "photos", "--cids", "--prefix", "big",
         "--config", str(relay.data_dir.parent / "relay.toml"), "--data", str(relay.data_dir)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    chunks = re.findall(r"chunk\s+(\S+)", listing)
    assert len(chunks) == 4, listing
    fetched = b""
    for chunk in chunks:
        status, location = ask(roundabout, f"/{chunk}")
        assert status == 302
        assert location is not None
        got_status, got = fetch(location)
        assert got_status == 200
        assert CID.raw_sha256(hashlib.sha256(got).digest()) == CID.decode(chunk)
        fetched += got
    assert fetched == big


def test_roundabout_refusals_through_the_running_server(
    relay_on_s3: tuple[RelayProcess, str],
) -> None:
    _, roundabout = relay_on_s3
    unknown = CID.raw_sha256(hashlib.sha256(b"never stored").digest())
    assert ask(roundabout, f"/{unknown}")[0] == 404
    assert ask(roundabout, "/not-a-cid")[0] == 400
    for bad in ("0", "604801", "soon"):
        assert ask(roundabout, f"/{unknown}?expires={bad}")[0] == 400
    # relay's own store bucket, configured for claims but not key_access: /key/ presigns
    # nothing there, or any key of any tenant's blobs would be a URL away.
    status, location = ask(roundabout, "/key/private/db-backup.sql?bucket=carpark")
    assert (status, location) == (403, None)


def test_an_expired_presign_is_refused_by_the_upstream(
    relay_on_s3: tuple[RelayProcess, str],
) -> None:
    relay, roundabout = relay_on_s3
    s3 = boto_client(relay)
    s3.create_bucket(Bucket="expiring")
    body = b"short-lived"
    s3.put_object(Bucket="expiring", Key="k", Body=body)
    cid = s3.head_object(Bucket="expiring", Key="k")["ResponseMetadata"]["HTTPHeaders"][
        "x-unixfs-cid"
    ]
    status, location = ask(roundabout, f"/{cid}?expires=1")
    assert status == 302
    assert location is not None
    time.sleep(2.1)
    assert fetch(location)[0] == 403


TENANTS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture(scope="module")
def relay_with_auth(
    upstream: RelayProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RelayProcess, str]]:
    bucket = "carpark-tenants"
    boto_client(upstream).create_bucket(Bucket=bucket)
    base = tmp_path_factory.mktemp("relay-auth")
    config = base / "relay.toml"
    upstream_settings = (
        f'endpoint = "{upstream.endpoint}"\nbucket = "{bucket}"\n'
        f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n'
    )
    config.write_text(
        "".join(
            f'[[credentials]]\naccess_key_id = "{key}"\nsecret_access_key = "{secret}"\n'
            for key, secret in TENANTS.items()
        )
        + f'[store]\nkind = "s3"\n[store.s3]\nregion = "us-east-1"\n{upstream_settings}'
        + '[roundabout]\nlisten = "127.0.0.1:0"\nrequire_auth = true\n'
        + f'[[roundabout.buckets]]\nregion = "us-east-1"\n{upstream_settings}'
    )
    relay = start_relay(base, config=config)
    try:
        yield relay, re.search(r"serving roundabout at (http://\S+)", relay.log()).group(1)  # type: ignore[union-attr]
    finally:
        assert stop_relay(relay.process) == 0, relay.log()[-3000:]


def tenant_client(relay: RelayProcess, key: str) -> Any:
    return boto3.session.Session().client(
        "s3", endpoint_url=relay.endpoint, aws_access_key_id=key,
        aws_secret_access_key=TENANTS[key], region_name="us-east-1",
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )  # fmt: skip


def signed_target(roundabout: str, cid: str, key: str) -> str:
    host = urlsplit(roundabout).netloc
    url = presign_url(
        "GET", "http", host, f"/{cid}", [], access_key=key, secret=TENANTS[key],
        region="us-east-1", service="s3", now=time.time(), expires=300,
    )  # fmt: skip
    return url.removeprefix(f"http://{host}")


def test_with_require_auth_each_tenant_is_redirected_to_its_own_chunks_only(
    relay_with_auth: tuple[RelayProcess, str],
) -> None:
    relay, roundabout = relay_with_auth
    alice, bob = tenant_client(relay, "alice"), tenant_client(relay, "bob")
    alice.create_bucket(Bucket="alices")
    data = b"alice's bytes, stored once for every tenant " * 100
    alice.put_object(Bucket="alices", Key="a", Body=data)
    cid = alice.head_object(Bucket="alices", Key="a")["ResponseMetadata"]["HTTPHeaders"][
        "x-unixfs-cid"
    ]
    status, location = ask(roundabout, signed_target(roundabout, cid, "alice"))
    assert status == 302
    assert location is not None
    assert fetch(location) == (200, data)
    assert ask(roundabout, signed_target(roundabout, cid, "bob")) == (403, None)
    assert ask(roundabout, f"/{cid}")[0] == 403  # unsigned
    # bob stores the same bytes: deduplicated, and now reachable from his bucket too
    bob.create_bucket(Bucket="bobs")
    bob.put_object(Bucket="bobs", Key="b", Body=data)
    assert ask(roundabout, signed_target(roundabout, cid, "bob"))[0] == 302
