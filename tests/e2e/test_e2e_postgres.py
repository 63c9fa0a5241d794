"""``relay serve`` on a PostgreSQL registry and the ``s3`` blob store (moto behind it):
the whole S3 surface works, PostgreSQL stopped under it makes writes 503
ServiceUnavailable, and once it is back relay serves again by itself, having lost nothing
it acknowledged. Three real servers besides the test: relay, PostgreSQL, moto."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from e2e_helpers import ACCESS_KEY, REGION, SECRET_KEY, boto_client, start_relay, stop_relay
from moto_upstream import MotoServer, moto_or_skip, stop_moto
from pg import PostgresServer, postgres_or_fail

pytestmark = pytest.mark.slow  # three servers, a stop and a start of PostgreSQL

# A restarted PostgreSQL accepts connections in moments; the pool finds it within its
# reconnection backoff. Generous, for a loaded machine.
RECOVERY_TIMEOUT_SECONDS = 90.0
PART = 5 << 20  # S3's smallest part but the last


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = postgres_or_fail()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    (tmp_path / "moto").mkdir()
    server = moto_or_skip(tmp_path / "moto")
    try:
        yield server
    finally:
        stop_moto(server.process)


@pytest.fixture
def relay_config(tmp_path: Path, moto: MotoServer) -> Path:
    """A config file: the s3 store on moto, test/test credentials. The registry URL is
    given on the command line, as ``--registry-url``."""
    bucket = moto.new_bucket()
    path = tmp_path / "relay.toml"
    path.write_text(
        f'[store]\nkind = "s3"\n\n[store.s3]\nendpoint = "{moto.endpoint}"\n'
        f'region = "{REGION}"\nbucket = "{bucket}"\naccess_key_id = "{moto.access_key}"\n'
        f'secret_access_key = "{moto.secret_key}"\n\n'
        f'[[credentials]]\naccess_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n'
    )
    return path


def test_relay_on_postgres_serves_survives_a_database_outage_and_loses_nothing(
    tmp_path: Path, postgres: PostgresServer, relay_config: Path
) -> None:
    url = postgres.new_database()
    relay = start_relay(tmp_path, config=relay_config, args=["--registry-url", url])
    try:
        s3 = boto_client(relay)
        s3.create_bucket(Bucket="shared")
        acknowledged: dict[str, bytes] = {}
        for index in range(5):
            body = os.urandom(1000 + index * 70_000)
            s3.put_object(Bucket="shared", Key=f"small/{index}", Body=body)
            acknowledged[f"small/{index}"] = body
        listed = s3.list_objects_v2(Bucket="shared", Prefix="small/")["Contents"]
        assert [item["Key"] for item in listed] == sorted(acknowledged)
        assert (
            s3.get_object(Bucket="shared", Key="small/3")["Body"].read() == acknowledged["small/3"]
        )

        parts = [os.urandom(PART), os.urandom(12345)]
        upload = s3.create_multipart_upload(Bucket="shared", Key="big")["UploadId"]
        etags = [
            s3.upload_part(
                Bucket="shared", Key="big", UploadId=upload, PartNumber=number, Body=data
            )["ETag"]
            for number, data in enumerate(parts, start=1)
        ]
        s3.complete_multipart_upload(
            Bucket="shared",
            Key="big",
            UploadId=upload,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]
            },
        )
        acknowledged["big"] = b"".join(parts)

        postgres.stop()
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket="shared", Key="during-outage", Body=b"not acknowledged")
        error = refused.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert error["Error"]["Code"] == "ServiceUnavailable"

        postgres.start()
        deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
        statuses: list[int] = []  # of the retries while the pool reconnects: 503s only
        while True:
            try:
                s3.put_object(Bucket="shared", Key="after-outage", Body=b"back again")
                break
            except ClientError as exc:
                statuses.append(exc.response["ResponseMetadata"]["HTTPStatusCode"])
            assert set(statuses) <= {503}, statuses
            assert time.monotonic() < deadline, "relay did not resume after PostgreSQL"
            time.sleep(0.5)
        acknowledged["after-outage"] = b"back again"
        assert relay.process.poll() is None  # the same relay process, never restarted

        for key, body in acknowledged.items():
            got = s3.get_object(Bucket="shared", Key=key)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), key
        listed = s3.list_objects_v2(Bucket="shared")["Contents"]
        assert {item["Key"] for item in listed} >= set(acknowledged)
        log = relay.log()
        assert postgres.password not in log
    finally:
        stop_relay(relay.process)
