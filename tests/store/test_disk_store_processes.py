"""The disk store and the SQLite registry shared by real processes, as ``relay serve
--workers N`` and a ``relay`` command beside it share them: every process writes at once
(blobs, syncs, registry transactions), none is told "database is locked", and every
process reads what the others made durable."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import trio

from relay.registry import open_sqlite_registry
from relay.store.disk import open_disk_store

PROCESSES = 3
ROUNDS = 60

_WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    import trio
    from relay.registry import open_sqlite_registry
    from relay.registry.base import Claim
    from relay.store.disk import open_disk_store

    async def main(root: Path, name: str, rounds: int) -> None:
        async with open_sqlite_registry(root / "registry.sqlite") as registry:
            async with open_disk_store(root / "blobs", pack_size_limit_bytes=1 << 20) as store:
                for number in range(rounds):
                    # Small (staged) and large (written through) blobs, a sync each round
                    # (an index transaction), then a registry transaction.
                    for size in (100, 200_000):
                        data = f"{name}-{number}-".encode() * (size // 8)
                        mh = b"\\x12\\x20" + hashlib.sha256(data).digest()
                        await store.put(mh, data)
                    await store.sync()
                    await registry.add_claims([Claim(mh, f"https://{name}.example/{number}")])

    trio.run(main, Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
    """
)


def blob(name: str, number: int, size: int) -> tuple[bytes, bytes]:
    data = f"{name}-{number}-".encode() * (size // 8)
    return b"\x12\x20" + hashlib.sha256(data).digest(), data


async def create_registry(root: Path) -> None:
    async with open_sqlite_registry(root / "registry.sqlite"):
        pass  # created once, as the supervisor does before it starts workers


async def check_everything_readable(root: Path) -> None:
    async with (
        open_sqlite_registry(root / "registry.sqlite") as registry,
        open_disk_store(root / "blobs") as store,
    ):
        for n in range(PROCESSES):
            for number in range(ROUNDS):
                for size in (100, 200_000):
                    mh, data = blob(f"p{n}", number, size)
                    assert await store.get(mh) == data
                claims = await registry.claims_for(mh)
                assert [claim.url for claim in claims] == [f"https://p{n}.example/{number}"]


def test_processes_write_one_store_and_registry_at_once_and_read_each_other(
    tmp_path: Path,
) -> None:
    trio.run(create_registry, tmp_path)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), f"p{n}", str(ROUNDS)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    failures = []
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        if writer.returncode != 0:
            failures.append(stderr)
    assert not failures, failures[0]
    packs = sorted((tmp_path / "blobs" / "packs").glob("*.pack"))
    assert len(packs) >= PROCESSES  # each process appended to packs of its own
    trio.run(check_everything_readable, tmp_path)
