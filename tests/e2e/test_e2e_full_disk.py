"""A full disk through a real ``relay serve``: a precise error, deletes that still work,
and writes that succeed again once there is room, with no restart.

The data directory is a 64 MiB tmpfs of the test's own (the tests run as root in CI;
where mounting is not permitted the test skips, saying so). Room comes back the way an
operator makes it (a file removed); the store-level test
``tests/store/test_disk_full.py`` frees it the way garbage collection does (blobs deleted,
packs compacted) and sees the same recovery.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from e2e_helpers import ACCESS_KEY, SECRET_KEY, boto_client, start_relay, stop_relay

MiB = 1 << 20
CONFIG = (
    f'[[credentials]]\naccess_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n\n'
    f"[store]\npack_size_limit_bytes = {8 * MiB}\nreserve_bytes = {4 * MiB}\n"
)


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "fs"
    directory.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(
            "FULL-DISK TEST NOT RUN: mounting a tmpfs is not permitted here"
            f" ({mount.stderr.strip()}); run the tests as root"
        )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def error_of(exc: ClientError) -> tuple[str, int, str]:
    response = exc.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_a_full_disk_answers_507_keeps_deleting_and_recovers_without_a_restart(
    small_filesystem: Path,
) -> None:
    # Whatever else shares the disk; removing it later is the operator freeing space.
    ballast = small_filesystem / "ballast"
    ballast.write_bytes(bytes(16 * MiB))
    config = small_filesystem / "relay.toml"
    config.write_text(CONFIG)
    relay = start_relay(small_filesystem, config=config)
    try:
        s3 = boto_client(relay)
        s3.create_bucket(Bucket="full")
        s3.create_bucket(Bucket="spare")
        upload = s3.create_multipart_upload(Bucket="full", Key="pending")["UploadId"]
        stored = []
        for n in range(40):
            try:
                s3.put_object(Bucket="full", Key=f"k{n}", Body=os.urandom(5 * MiB))
            except ClientError as exc:
                code, status, message = error_of(exc)
                assert (code, status) == ("InsufficientStorage", 507), relay.log()[-3000:]
                assert "space" in message
                break
            stored.append(f"k{n}")
        else:  # pragma: no cover
            raise AssertionError("64 MiB never filled")
        assert len(stored) >= 3
        # Still full: new data is refused, and the refused key does not exist.
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket="full", Key="small", Body=b"x" * 100)
        assert error_of(refused.value)[:2] == ("InsufficientStorage", 507)
        with pytest.raises(ClientError):
            s3.head_object(Bucket="full", Key="small")
        # Deletes of every kind work on the full disk.
        s3.delete_object(Bucket="full", Key=stored[0])
        deleted = s3.delete_objects(
            Bucket="full", Delete={"Objects": [{"Key": key} for key in stored[1:3]]}
        )
        assert not deleted.get("Errors"), deleted
        s3.abort_multipart_upload(Bucket="full", Key="pending", UploadId=upload)
        s3.delete_bucket(Bucket="spare")
        listed = s3.list_objects_v2(Bucket="full").get("Contents", [])
        assert sorted(o["Key"] for o in listed) == sorted(stored[3:])
        # Room comes back: the next write succeeds, on the same server.
        ballast.unlink()
        s3.put_object(Bucket="full", Key="after", Body=b"back" * 1000)
        assert s3.get_object(Bucket="full", Key="after")["Body"].read() == b"back" * 1000
        for key in stored[3:]:
            assert s3.head_object(Bucket="full", Key=key)["ContentLength"] == 5 * MiB
    finally:
        assert stop_relay(relay.process) == 0, relay.log()[-3000:]
