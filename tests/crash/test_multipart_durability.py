"""An acknowledged part survives kill -9: through a real ``relay serve`` on the disk store.

The finding: two 5 MiB parts acknowledged, the server idle, then SIGKILL. The parts'
registry rows survived but their chunks did not (the disk store indexes blobs only at a
sync, and nothing synced the store before the rows were written), so after the restart
ListParts showed both parts and CompleteMultipartUpload failed with InternalError. Nothing
else writes in these tests, so no commit syncs the store by chance: the outcome is
deterministic.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from campaign import MIB, PART_BYTES, S3, Server, start_server

# Long enough for any background work to have run; the finding saw the same at 2 s and 40 s.
IDLE_GAP_SECONDS = 0.5

BUCKET = "durable"

pytestmark = pytest.mark.slow


class Relay:
    """A server that can be killed and started again on the same data directory."""

    def __init__(self, base: Path) -> None:
        self.data_dir = base / "data"
        self.log_path = base / "relay.log"
        self.server: Server = start_server(self.data_dir, self.log_path)
        self.clients: list[S3] = []

    def client(self) -> S3:
        self.clients.append(S3(self.server.host, self.server.port))
        return self.clients[-1]

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()

    def kill_and_restart(self) -> S3:
        time.sleep(IDLE_GAP_SECONDS)
        self.server.kill()
        self.close_clients()
        self.server = start_server(self.data_dir, self.log_path)
        return self.client()


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    relay = Relay(tmp_path)
    try:
        yield relay
    finally:
        relay.close_clients()
        relay.server.stop()


def test_acknowledged_parts_survive_a_kill_and_complete(relay: Relay) -> None:
    rng = random.Random(15)
    parts = [rng.randbytes(PART_BYTES), rng.randbytes(PART_BYTES)]
    s3 = relay.client()
    s3.create_bucket(BUCKET)
    upload_id = s3.create_upload(BUCKET, "big")
    etags = {
        n: s3.upload_part(BUCKET, "big", upload_id, n, data) for n, data in enumerate(parts, 1)
    }

    s3 = relay.kill_and_restart()

    assert s3.list_parts(BUCKET, "big", upload_id) == etags
    s3.complete(BUCKET, "big", upload_id, etags)
    assert s3.get_object(BUCKET, "big") == b"".join(parts)


def test_acknowledged_part_copies_survive_a_kill_and_complete(relay: Relay) -> None:
    """UploadPartCopy of unaligned ranges: the edge chunks are new blobs, stored by the
    copy itself; the whole chunks in between are the (committed) source's."""
    source = random.Random(16).randbytes(PART_BYTES + 2 * MIB)
    ranges = [(12_345, 12_345 + PART_BYTES), (MIB + 7, len(source) - 3)]
    s3 = relay.client()
    s3.create_bucket(BUCKET)
    s3.put_object(BUCKET, "source", source)
    upload_id = s3.create_upload(BUCKET, "copy")
    etags = {
        n: s3.upload_part_copy(BUCKET, "copy", upload_id, n, "source", first, end - 1)
        for n, (first, end) in enumerate(ranges, 1)
    }

    s3 = relay.kill_and_restart()

    assert s3.list_parts(BUCKET, "copy", upload_id) == etags
    s3.complete(BUCKET, "copy", upload_id, etags)
    assert s3.get_object(BUCKET, "copy") == b"".join(source[first:end] for first, end in ranges)
