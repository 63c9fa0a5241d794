"""Crash safety, for real: a writer process is SIGKILLed at random moments, many times.

After every kill the data directory is reopened and checked: every acknowledged put
reads back byte-identical (unless a later acknowledged delete removed it), and every
object that is visible at all is whole and correct: nothing partial is ever visible.
A delete the kill interrupted may have committed or not (its durable commit can land
before the writer prints ``DEL``), so such a key may be either present or absent.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from engine_crash_writer import BUCKET, expected_body, storage_config

from relay.bucket.errors import NoSuchKey
from relay.storage import open_storage

WRITER = Path(__file__).with_name("engine_crash_writer.py")
ROUNDS = 8


def run_and_kill(data_dir: Path, round_number: int, rng: random.Random) -> list[str]:
    process = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir), str(round_number)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(WRITER.parent)},
    )
    assert process.stdout is not None
    ready = process.stdout.readline()
    assert ready.strip() == "READY", process.stderr.read() if process.stderr else ready
    time.sleep(rng.uniform(0.2, 1.5))
    process.send_signal(signal.SIGKILL)
    output, errors = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, errors
    return output.splitlines()


async def verify(data_dir: Path, acknowledged: dict[str, bool | None]) -> int:
    """Check the reopened directory; ``acknowledged`` maps a key to present, absent or
    None (a delete was interrupted: either is right)."""
    async with open_storage(storage_config(data_dir)) as engine:
        for key, present in acknowledged.items():
            if present:
                assert await engine.read_object(BUCKET, key) == expected_body(key), key
            elif present is not None:
                with pytest.raises(NoSuchKey):
                    await engine.head_object(BUCKET, key)
        visible = 0
        start_after = ""
        while True:
            page = await engine.list_objects(BUCKET, start_after=start_after, limit=500)
            for entry in page.entries:
                body = await engine.read_object(BUCKET, entry.key)
                assert body == expected_body(entry.key), f"{entry.key} is partial or wrong"
                assert entry.manifest.size == len(body)
                visible += 1
            if not page.is_truncated:
                return visible
            start_after = page.entries[-1].key


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill_and_nothing_partial_is_visible(
    tmp_path: Path,
) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    data_dir = tmp_path / "data"
    acknowledged: dict[str, bool | None] = {}
    total_acks = 0
    for round_number in range(ROUNDS):
        for line in run_and_kill(data_dir, round_number, rng):
            verb, key = line.split(" ", 1)
            if verb == "ACK":
                acknowledged[key] = True
                total_acks += 1
            elif verb == "DELETING":
                acknowledged[key] = None  # until its DEL line, if one comes
            elif verb == "DEL":
                acknowledged[key] = False
        visible = trio.run(verify, data_dir, acknowledged)
        assert visible >= sum(present is True for present in acknowledged.values())
    assert total_acks > ROUNDS * 10, "the writer should have made progress before each kill"
