"""A real crash: SIGKILL a process that puts and syncs, then check what it acknowledged.

SIGKILL stops the writer at an arbitrary instruction (mid-pwrite, between the pack fsync
and the index commit, mid-rotation) but the kernel keeps its page cache, so this checks
the process-level ordering and atomicity; what a power cut adds (lost unsynced pages,
torn tails) is covered by the truncation tests in test_disk_store.py.
"""

from __future__ import annotations

import importlib.util
import random
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trio

from relay.store.base import BlobNotFound
from relay.store.disk import open_disk_store

WRITER = Path(__file__).with_name("disk_crash_writer.py")
ROUNDS = 5


def load_writer() -> ModuleType:
    # The writer is a script run by path, not a package module: load it the same way.
    spec = importlib.util.spec_from_file_location("disk_crash_writer", WRITER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run_and_kill(
    directory: Path, round_number: int, seconds: float
) -> tuple[set[str], set[str]]:
    """Run the writer for ``seconds`` after its first ack, SIGKILL it, parse what it said."""
    output = bytearray()
    process = await trio.lowlevel.open_process(
        [sys.executable, str(WRITER), str(directory), str(round_number)],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        with trio.fail_after(30):
            while b"ack " not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, "the writer exited before acknowledging anything"
                output += chunk
        with trio.move_on_after(seconds):
            while chunk := await process.stdout.receive_some():
                output += chunk
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    output += b"".join([chunk async for chunk in process.stdout])
    complete_lines = output[: output.rfind(b"\n") + 1].decode().splitlines()
    put = {line[4:] for line in complete_lines if line.startswith("put ")}
    acked = {line[4:] for line in complete_lines if line.startswith("ack ")}
    assert process.returncode == -signal.SIGKILL
    return put, acked


@pytest.mark.slow
async def test_acknowledged_blobs_survive_sigkill(tmp_path: Path) -> None:
    writer = load_writer()
    rng = random.Random()
    all_put: set[str] = set()
    all_acked: set[str] = set()
    for round_number in range(ROUNDS):
        put, acked = await run_and_kill(tmp_path, round_number, rng.uniform(0.05, 1.0))
        assert acked <= put
        all_put |= put
        all_acked |= acked
        async with open_disk_store(tmp_path) as store:
            # Every round so far: later rounds must not disturb what earlier ones wrote.
            for name in sorted(all_put):
                round_of, n = (int(part) for part in name.split(":"))
                mh, data = writer.blob_for(round_of, n)
                if name in all_acked:
                    assert await store.get(mh) == data, name
                else:  # not acknowledged: forgotten or intact, never corrupt
                    try:
                        assert await store.get(mh) == data, name
                    except BlobNotFound:
                        pass
    assert len(all_acked) >= ROUNDS
