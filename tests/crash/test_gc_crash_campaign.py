"""``kill -9`` of a garbage collection at random moments: marking, sweeping, compacting.

Each trial first makes garbage the way a user does (overwrites and deletes, through the
engine, remembering exactly what is acknowledged), then runs a collection in a process of
its own (``gc_crash_child.py``: what ``relay gc`` runs, with no history kept and no grace)
and SIGKILLs it a random delay after it opened the store, drawn over the length of that
trial's whole collection (measured on a copy of the store first; start-up is left out,
since it is longer than the collection and would swallow the kills). The packs are small
(1 MiB), so the compaction at its end rewrites many of them and a kill lands among its
copy, sync, switch and delete steps as often as in the mark and sweep. After every kill
the store is reopened and every acknowledged object must read back byte-identical; at the
end ``relay gc`` runs to completion, and ``relay fsck`` must find the store clean.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from relay.config import load_config
from relay.storage import open_storage

TRIALS = 14
PACK_LIMIT = {"RELAY_PACK_SIZE_LIMIT_BYTES": str(1 << 20)}
COLLECT_NOW = {
    "RELAY_GC_GRACE_SECONDS": "0",
    "RELAY_GC_HISTORY_RETENTION_SECONDS": "0",
    **PACK_LIMIT,
}


CHILD = Path(__file__).with_name("gc_crash_child.py")


def relay_command(*args: str) -> tuple[list[str], dict[str, str]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    environment.update(COLLECT_NOW)
    return [sys.executable, "-m", "relay", *args], environment


def start_collection(data_dir: Path) -> subprocess.Popen[str]:
    """A collection in a process of its own, returned once it has opened the store."""
    process = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line == "collecting\n", line + (process.stderr.read() if process.stderr else "")
    return process


async def one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def churn(data_dir: Path, expected: dict[str, bytes], rng: random.Random) -> None:
    """Overwrite some keys, delete some, add some; ``expected`` follows each
    acknowledgment."""
    config = load_config(data_dir=data_dir, environ=PACK_LIMIT)
    async with open_storage(config) as engine:
        if await engine.registry.get_bucket("b") is None:
            await engine.create_bucket("b")
        for _ in range(30):
            key = f"k{rng.randrange(60)}"
            if key in expected and rng.random() < 0.35:
                await engine.delete_object("b", key)
                del expected[key]
                continue
            # Sizes across one chunk boundary and small ones, so packs mix live and dead.
            data = rng.randbytes(rng.choice([3_000, 90_000, 400_000, 1_300_000, 3_000_000]))
            await engine.put_object("b", key, one_piece(data))
            expected[key] = data


async def check(data_dir: Path, expected: dict[str, bytes]) -> list[str]:
    """The keys that do not read back as acknowledged (empty when all is well)."""
    wrong = []
    async with open_storage(load_config(data_dir=data_dir, environ=PACK_LIMIT)) as engine:
        keys, _more = await engine.list_keys("b", limit=1000)
        listed = [key for key, _cid in keys]
        if sorted(listed) != sorted(expected):
            wrong.append(f"listing {sorted(listed)} != {sorted(expected)}")
        for key, data in expected.items():
            if await engine.read_object("b", key) != data:
                wrong.append(key)
    return wrong


def time_a_collection(data_dir: Path, scratch: Path) -> float:
    """How long this trial's collection takes, store open (measured on a copy)."""
    copy = scratch / "copy"
    shutil.copytree(data_dir, copy)
    process = start_collection(copy)
    out, errors = process.communicate()
    assert process.returncode == 0, errors
    shutil.rmtree(copy)
    return float(out.split()[1])


@pytest.mark.slow
def test_gc_and_compaction_killed_at_random_moments_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(1818)
    data_dir = tmp_path / "data"
    expected: dict[str, bytes] = {}
    trio.run(churn, data_dir, expected, rng)
    killed_mid_run = 0
    for trial in range(TRIALS):
        trio.run(churn, data_dir, expected, rng)
        whole = time_a_collection(data_dir, tmp_path)
        process = start_collection(data_dir)
        delay = rng.uniform(0, whole)
        time.sleep(delay)
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        _, errors = process.communicate()
        assert process.returncode in (0, -signal.SIGKILL), errors
        wrong = trio.run(check, data_dir, expected)
        assert wrong == [], f"trial {trial}: {wrong}"
        print(f"trial {trial}: collection {whole:.3f} s, killed after {delay:.3f} s: {killed}")
    # The campaign did what it says: most kills landed inside a collection.
    assert killed_mid_run >= TRIALS // 2, killed_mid_run

    command, environment = relay_command("gc", "--data", str(data_dir))
    final = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    assert trio.run(check, data_dir, expected) == []
    command, environment = relay_command("fsck", "--data", str(data_dir))
    fsck = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
