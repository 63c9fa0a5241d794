"""relay serving S3 on the ``piri`` blob store: boto3 in front, a fake piri node behind
(tests/piri_fake.py, in a thread of this process), relay in its own process.

The operator's path is followed as written in the README: ``relay did`` prints relay's DID,
piri delegates to it, the delegation goes into ``[store.piri]``, ``relay serve`` runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from e2e_helpers import RelayProcess, boto_client, start_relay, stop_relay
from piri_fake import FakePiriThread, piri_delegation

from relay.ipld.car import CarError, read_car
from relay.ipld.cid import CID, blob_key
from relay.ucan import Signer

CHUNK = 1 << 20
BODY = os.urandom(2 * CHUNK + 4321)  # three chunks


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def redirect_of(url: str) -> tuple[int, str | None]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, response.headers.get("location")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("location")


def relay_command(*args: str) -> str:
    env = {name: value for name, value in os.environ.items() if not name.startswith("RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "relay", *args], capture_output=True, text=True, check=True, env=env
    ).stdout


@pytest.fixture(scope="module")
def piri() -> Iterator[FakePiriThread]:
    node = FakePiriThread()
    try:
        yield node
    finally:
        node.stop()


def start_relay_on_piri(piri: FakePiriThread, base: Path, *, delegate: Signer) -> RelayProcess:
    """``relay did``, a delegation from ``delegate`` to that DID, ``relay serve``."""
    did = relay_command("did", "--data", str(base / "data")).strip()
    delegation = piri_delegation(delegate, did)
    config = base / "relay.toml"
    config.write_text(
        '[[credentials]]\naccess_key_id = "test"\nsecret_access_key = "test"\n'
        f'[store]\nkind = "piri"\n[store.piri]\nendpoint = "{piri.fake.url}"\n'
        f'did = "{piri.fake.did}"\ndelegation = "{delegation}"\n'
        '[roundabout]\nlisten = "127.0.0.1:0"\n'
    )
    return start_relay(base, config=config)


def test_objects_go_to_piri_and_their_chunks_redirect_there(
    piri: FakePiriThread, tmp_path: Path
) -> None:
    relay = start_relay_on_piri(piri, tmp_path, delegate=piri.fake.signer)
    try:
        s3 = boto_client(relay)
        s3.create_bucket(Bucket="photos")
        s3.put_object(Bucket="photos", Key="big.bin", Body=BODY)
        got = s3.get_object(Bucket="photos", Key="big.bin")["Body"].read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(BODY).digest()
        ranged = s3.get_object(Bucket="photos", Key="big.bin", Range="bytes=1048000-1049000")
        assert ranged["Body"].read() == BODY[1048000:1049001]
        roundabout = re.search(r"serving roundabout at (http://\S+)", relay.log())
        assert roundabout is not None
        listing = relay_command(
            "ls", "photos", "--cids", "--config", str(tmp_path / "relay.toml"),
            "--data", str(relay.data_dir),
        )  # fmt: skip
        chunks = re.findall(r"chunk\s+(\S+)", listing)
        assert len(chunks) == 3, listing
        fetched = b""
        for chunk in chunks:
            status, location = redirect_of(f"{roundabout.group(1)}/{chunk}")
            assert status == 302
            assert location == f"{piri.fake.url}/blob/{blob_key(CID.decode(chunk).multihash)}"
            with urllib.request.urlopen(location, timeout=30) as response:
                data = response.read()
            assert CID.raw_sha256(hashlib.sha256(data).digest()) == CID.decode(chunk)
            fetched += data
        assert fetched == BODY
        log = relay_command("log", "photos", "--data", str(relay.data_dir))
    finally:
        code = stop_relay(relay.process)
    assert code == 0, relay.log()[-3000:]
    assert "Traceback" not in relay.log(), relay.log()[-3000:]
    # The commit CAR is a blob on piri like any other: the bucket's root block is in one.
    root = CID.decode(log.split()[3])
    holding_root = [blob for blob in piri.fake.blobs.values() if root_block_in(blob, root)]
    assert len(holding_root) == 1


def root_block_in(blob: bytes, root: CID) -> bool:
    try:
        _, blocks = read_car(blob)
    except CarError:
        return False
    return any(block.cid == root for block in blocks)


def test_a_refused_delegation_fails_the_put_naming_it_and_commits_nothing(
    piri: FakePiriThread, tmp_path: Path
) -> None:
    relay = start_relay_on_piri(piri, tmp_path, delegate=Signer.generate())
    try:
        s3 = boto_client(relay)
        s3.create_bucket(Bucket="refused")
        with pytest.raises(ClientError) as caught:
            s3.put_object(Bucket="refused", Key="k", Body=b"never stored " * 100)
        error = caught.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert error["Error"]["Code"] == "ServiceUnavailable"
        assert "piri node refused blob/allocate: Unauthorized" in error["Error"]["Message"]
        with pytest.raises(ClientError) as missing:
            s3.head_object(Bucket="refused", Key="k")
        assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert s3.list_objects_v2(Bucket="refused")["KeyCount"] == 0
    finally:
        code = stop_relay(relay.process)
    assert code == 0, relay.log()[-3000:]
    assert "Traceback" not in relay.log(), relay.log()[-3000:]
