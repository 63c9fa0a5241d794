"""Self-healing content addressing on the disk store, through a real ``relay serve``:
a chunk whose pack record is damaged or gone behind relay's back is never served as a
200, and the next PUT of the same bytes stores it again, healing every key that names it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from e2e_helpers import ACCESS_KEY, SECRET_KEY, RelayProcess, boto_client, start_relay, stop_relay

# One chunk, large enough to be written to its pack at once (not staged until a sync).
BODY = os.urandom(300_000)


# Every record in a pack of its own: damaging the chunk's pack damages nothing else (the
# commit and index CARs live in other packs).
CONFIG = (
    f'[[credentials]]\naccess_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n\n'
    "[store]\npack_size_limit_bytes = 1\n"
)


@contextmanager
def running_relay(base: Path) -> Iterator[tuple[RelayProcess, Any]]:
    config = base / "relay.toml"
    config.write_text(CONFIG)
    relay = start_relay(base, config=config)  # the same data dir every time under the same base
    try:
        yield relay, boto_client(relay)
    finally:
        assert stop_relay(relay.process) == 0, relay.log()[-3000:]


def chunk_record(data_dir: Path) -> tuple[Path, int]:
    """The pack holding BODY's chunk, and where its bytes start there."""
    for pack in sorted((data_dir / "blobs" / "packs").glob("*.pack")):
        found = pack.read_bytes().find(BODY)
        if found >= 0:
            return pack, found
    raise AssertionError("the chunk is in no pack")


def flip_a_data_byte(data_dir: Path) -> None:
    pack, start = chunk_record(data_dir)
    with pack.open("r+b") as file:
        file.seek(start + len(BODY) // 2)
        byte = file.read(1)
        file.seek(start + len(BODY) // 2)
        file.write(bytes([byte[0] ^ 0x01]))


def truncate_the_record(data_dir: Path) -> None:
    pack, start = chunk_record(data_dir)
    os.truncate(pack, start + len(BODY) // 2)


def delete_the_pack(data_dir: Path) -> None:
    pack, _ = chunk_record(data_dir)
    pack.unlink()


def put_x1(tmp_path: Path) -> None:
    with running_relay(tmp_path) as (_, client):
        client.create_bucket(Bucket="heal")
        client.put_object(Bucket="heal", Key="x1", Body=BODY)


def assert_internal_error(client: Any, key: str) -> None:
    with pytest.raises(ClientError) as caught:
        client.get_object(Bucket="heal", Key=key)
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert response["Error"]["Code"] == "InternalError"


def assert_both_keys_read_back(client: Any) -> None:
    for key in ("x1", "x2"):
        assert client.get_object(Bucket="heal", Key=key)["Body"].read() == BODY


@pytest.mark.parametrize("damage", [truncate_the_record, delete_the_pack])
def test_a_put_of_the_same_bytes_stores_a_lost_chunk_again(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    put_x1(tmp_path)
    damage(tmp_path / "data")
    with running_relay(tmp_path) as (_, client):
        # The put's check sees the record is gone: the bytes are stored again.
        client.put_object(Bucket="heal", Key="x2", Body=BODY)
        assert_both_keys_read_back(client)


def test_a_get_of_a_lost_first_chunk_is_an_s3_error(tmp_path: Path) -> None:
    put_x1(tmp_path)
    delete_the_pack(tmp_path / "data")
    with running_relay(tmp_path) as (_, client):
        assert_internal_error(client, "x1")
        with pytest.raises(ClientError) as ranged:
            client.get_object(Bucket="heal", Key="x1", Range="bytes=1000-1999")
        assert ranged.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


@pytest.mark.slow  # three relay starts
def test_a_flipped_byte_is_an_error_and_the_next_put_heals_it(tmp_path: Path) -> None:
    put_x1(tmp_path)
    flip_a_data_byte(tmp_path / "data")
    with running_relay(tmp_path) as (_, client):
        assert_internal_error(client, "x1")  # an S3 error, not a 200 cut short ...
        client.put_object(Bucket="heal", Key="x2", Body=BODY)  # ... which forgot the chunk
        assert_both_keys_read_back(client)
    with running_relay(tmp_path) as (_, client):  # healed durably
        assert_both_keys_read_back(client)
