"""relay against moto's S3 server, driven by the real aws CLI, in the same run.

Run: ``.venv/bin/python -m bench.bench_s3 [--quick] [--rounds N] [--workdir DIR]``

Scenarios, each on a freshly started server (so its peak RSS is that scenario's own):

* ``sync``: ``aws s3 sync`` of 1,000 x 4 KiB random files in nested directories into a
  fresh bucket (``sync-up``), then the same sync again with nothing changed (``resync``:
  listing and comparing only; it must upload nothing).
* ``big``: ``aws s3 cp`` of a 1 GiB random file up (``cp-up``, a multipart upload with the
  CLI's defaults: 8 MiB parts, 10 threads), then down to a file (``cp-down``), whose
  sha256 must equal the original's.

Per step and server: wall time, throughput, server CPU seconds (utime + stime of the
server process, all its threads, from /proc/<pid>/stat before and after the step), the
server's peak RSS during the step (VmHWM, reset before each step through
/proc/<pid>/clear_refs; where that is refused, the peak since the server started) and the
aws CLI's CPU seconds (its rusage). Rounds alternate which server goes first; ratios are
relay / moto taken pair by pair within a round (below 1 means relay used less), reported
as median [min-max] over the rounds. ``--quick``: 200 files, 128 MiB, one round.

Both servers and the client share this machine's cores, so wall time includes contention
with the client; relay writes to local disk (fsync included), moto keeps objects in
memory and spooled temporary files.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from bench import peers
from bench.clients import AwsCli, ClientEnvironment
from bench.common import save
from bench.peers import (
    GIB,
    KIB,
    MIB,
    PEERS,
    Server,
    distribution_version,
    moto_unavailable_reason,
    sha256_file,
)


@dataclass(frozen=True, slots=True)
class Settings:
    small_files: int
    small_size: int
    big_size: int
    moto_big_size: int
    rounds: int


@dataclass(frozen=True, slots=True)
class Step:
    """One timed client command against one server."""

    server: str
    scenario: str
    step: str
    round: int
    wall_seconds: float
    units: float  # objects or bytes moved
    unit: str  # "objects/s" or "MiB/s"
    server_cpu_seconds: float
    server_peak_rss_mib: float
    peak_rss_is_per_step: bool
    client_cpu_seconds: float

    @property
    def throughput(self) -> float:
        scale = MIB if self.unit == "MiB/s" else 1
        return self.units / scale / self.wall_seconds


# ----------------------------------------------------------------------------- server, client


@contextmanager
def running(kind: str, workdir: Path, notes: list[str]) -> Iterator[Server]:
    """A fresh server for one scenario; how it stopped is added to ``notes`` if unclean."""
    before = len(notes)
    with peers.running(PEERS[kind], workdir, notes) as server:
        yield server
    for note in notes[before:]:
        print(f"note: {note}")


class Client:
    """The aws CLI (bench.clients: private config, the server's own keys); raises on failure."""

    def __init__(self, home: Path) -> None:
        self.aws = AwsCli(ClientEnvironment(home))

    def run(self, server: Server, *arguments: str) -> tuple[str, float]:
        """Run ``aws``; return its output and its own CPU seconds (rusage from wait4)."""
        result = self.aws.run(server.endpoint, server.peer, *arguments)
        if result.returncode != 0:
            raise RuntimeError(
                f"aws {' '.join(arguments)} exited {result.returncode}:\n{result.output}"
            )
        return result.output, result.cpu_seconds


# ----------------------------------------------------------------------------- the data


def make_small_tree(root: Path, count: int, size: int) -> None:
    """``count`` random files of ``size`` bytes, spread over two levels of directories."""
    for n in range(count):
        directory = root / f"d{n % 8}" / f"e{n % 5}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{n:05d}.bin").write_bytes(os.urandom(size))


def make_big_file(path: Path, size: int) -> str:
    """A random file of ``size`` bytes; returns its sha256 hex digest."""
    digest = hashlib.sha256()
    piece = 16 * MIB
    with path.open("wb") as out:
        left = size
        while left:
            data = os.urandom(min(piece, left))
            digest.update(data)
            out.write(data)
            left -= len(data)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- the steps


def timed_step(
    server: Server,
    client: Client,
    scenario: str,
    step: str,
    round_number: int,
    units: float,
    unit: str,
    arguments: Sequence[str],
    check: Callable[[str], None],
) -> Step:
    per_step = server.reset_peak_rss()
    cpu_before = server.cpu_seconds()
    start = time.perf_counter()
    output, client_cpu = client.run(server, *arguments)
    wall = time.perf_counter() - start
    cpu = server.cpu_seconds() - cpu_before
    peak = server.peak_rss_mib()
    check(output)
    return Step(
        server=server.kind,
        scenario=scenario,
        step=step,
        round=round_number,
        wall_seconds=wall,
        units=units,
        unit=unit,
        server_cpu_seconds=cpu,
        server_peak_rss_mib=peak,
        peak_rss_is_per_step=per_step,
        client_cpu_seconds=client_cpu,
    )


def _expect_uploads(count: int) -> Callable[[str], None]:
    def check(output: str) -> None:
        uploads = len(re.findall(r"^upload: ", output, re.MULTILINE))
        if uploads != count:
            raise RuntimeError(f"expected {count} uploads, saw {uploads}:\n{output[-2000:]}")

    return check


def _no_check(output: str) -> None:
    pass


def run_sync(
    kind: str,
    client: Client,
    workdir: Path,
    notes: list[str],
    tree: Path,
    count: int,
    round_number: int,
) -> list[Step]:
    with running(kind, workdir, notes) as server:
        bucket = f"sync-{round_number}"
        client.run(server, "s3", "mb", f"s3://{bucket}")
        sync = ["s3", "sync", str(tree), f"s3://{bucket}/tree", "--no-progress"]
        steps = [
            timed_step(
                server,
                client,
                "sync",
                "sync-up",
                round_number,
                count,
                "objects/s",
                sync,
                _expect_uploads(count),
            ),
            timed_step(
                server,
                client,
                "sync",
                "resync",
                round_number,
                count,
                "objects/s",
                sync,
                _expect_uploads(0),
            ),
        ]
        listing, _ = client.run(
            server, "s3", "ls", f"s3://{bucket}/tree/", "--recursive", "--summarize"
        )
        if f"Total Objects: {count}" not in listing:
            raise RuntimeError(f"{kind}: bucket does not list {count} objects:\n{listing[-500:]}")
        return steps


def run_big(
    kind: str,
    client: Client,
    workdir: Path,
    notes: list[str],
    big: Path,
    size: int,
    digest: str,
    round_number: int,
) -> list[Step]:
    with running(kind, workdir, notes) as server:
        bucket = f"big-{round_number}"
        down = workdir / f"download-{kind}.bin"
        client.run(server, "s3", "mb", f"s3://{bucket}")
        up = ["s3", "cp", str(big), f"s3://{bucket}/big.bin", "--no-progress"]
        get = ["s3", "cp", f"s3://{bucket}/big.bin", str(down), "--no-progress"]
        try:
            steps = [
                timed_step(
                    server, client, "big", "cp-up", round_number, size, "MiB/s", up, _no_check
                ),
                timed_step(
                    server, client, "big", "cp-down", round_number, size, "MiB/s", get, _no_check
                ),
            ]
            if down.stat().st_size != size or sha256_file(down) != digest:
                raise RuntimeError(f"{kind}: the downloaded file differs from the upload")
        finally:
            down.unlink(missing_ok=True)
        return steps


# ----------------------------------------------------------------------------- reporting


def _spread(values: Sequence[float], digits: int) -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def _summary(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


STEP_ORDER: Final = ("sync-up", "resync", "cp-up", "cp-down")


def summarize(steps: Sequence[Step], servers: Sequence[str]) -> dict[str, Any]:
    by_key = {(s.server, s.step, s.round): s for s in steps}
    rounds = sorted({s.round for s in steps})
    summary: dict[str, Any] = {}
    for step in STEP_ORDER:
        entry: dict[str, Any] = {}
        for server in servers:
            mine = [by_key[server, step, r] for r in rounds if (server, step, r) in by_key]
            if not mine:
                continue
            entry[server] = {
                "unit": mine[0].unit,
                "units": mine[0].units,
                "wall_seconds": _summary([s.wall_seconds for s in mine]),
                "throughput": _summary([s.throughput for s in mine]),
                "server_cpu_seconds": _summary([s.server_cpu_seconds for s in mine]),
                "server_peak_rss_mib": _summary([s.server_peak_rss_mib for s in mine]),
                "client_cpu_seconds": _summary([s.client_cpu_seconds for s in mine]),
            }
        pairs = [
            (by_key["relay", step, r], by_key["moto", step, r])
            for r in rounds
            if ("relay", step, r) in by_key and ("moto", step, r) in by_key
        ]
        # A capped moto big file makes wall-time ratios meaningless; compare rates instead.
        if pairs:
            entry["ratio_relay_over_moto"] = {
                "wall_seconds_per_unit": _summary(
                    [(a.wall_seconds / a.units) / (b.wall_seconds / b.units) for a, b in pairs]
                ),
                "server_cpu_seconds_per_unit": _summary(
                    [
                        (a.server_cpu_seconds / a.units) / max(b.server_cpu_seconds / b.units, 1e-9)
                        for a, b in pairs
                    ]
                ),
                "server_peak_rss": _summary(
                    [a.server_peak_rss_mib / b.server_peak_rss_mib for a, b in pairs]
                ),
            }
        summary[step] = entry
    return summary


def print_tables(steps: Sequence[Step], servers: Sequence[str]) -> None:
    rounds = sorted({s.round for s in steps})
    print(f"\nPer server (median [min-max] over {len(rounds)} round(s)):")
    header = (
        f"  {'step':<8} {'server':<6} {'size':>9} {'wall s':>20} {'throughput':>26}"
        f" {'server CPU s':>20} {'server peak RSS MiB':>24} {'client CPU s':>20}"
    )
    print(header)
    for step in STEP_ORDER:
        for server in servers:
            mine = [s for s in steps if s.server == server and s.step == step]
            if not mine:
                continue
            size = (
                f"{mine[0].units:,.0f} obj"
                if mine[0].unit == "objects/s"
                else f"{mine[0].units / MIB:,.0f} MiB"
            )
            throughput = _spread([s.throughput for s in mine], 1) + " " + mine[0].unit
            wall = _spread([s.wall_seconds for s in mine], 2)
            print(
                f"  {step:<8} {server:<6} {size:>9} {wall:>20}"
                f" {throughput:>26}"
                f" {_spread([s.server_cpu_seconds for s in mine], 2):>20}"
                f" {_spread([s.server_peak_rss_mib for s in mine], 0):>24}"
                f" {_spread([s.client_cpu_seconds for s in mine], 2):>20}"
            )
    if "moto" not in servers:
        return
    by_key = {(s.server, s.step, s.round): s for s in steps}
    print("\nrelay / moto, pair by pair in each round (below 1: relay took less):")
    print(f"  {'step':<8} {'time per unit':>22} {'server CPU per unit':>22} {'peak RSS':>22}")
    for step in STEP_ORDER:
        pairs = [
            (by_key["relay", step, r], by_key["moto", step, r])
            for r in rounds
            if ("relay", step, r) in by_key and ("moto", step, r) in by_key
        ]
        if not pairs:
            continue
        time_ratio = [(a.wall_seconds / a.units) / (b.wall_seconds / b.units) for a, b in pairs]
        cpu_ratio = [
            (a.server_cpu_seconds / a.units) / max(b.server_cpu_seconds / b.units, 1e-9)
            for a, b in pairs
        ]
        rss_ratio = [a.server_peak_rss_mib / b.server_peak_rss_mib for a, b in pairs]
        print(
            f"  {step:<8} {_spread(time_ratio, 2):>22} {_spread(cpu_ratio, 2):>22}"
            f" {_spread(rss_ratio, 2):>22}"
        )


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_s3", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 files, 128 MiB, one round")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, 1 with --quick)")
    parser.add_argument("--workdir", type=Path, help="scratch directory on local disk")
    parser.add_argument(
        "--moto-big-mib",
        type=int,
        help="cap moto's big file at this many MiB (default: the same file as relay)",
    )
    parser.add_argument("--no-moto", action="store_true", help="benchmark relay alone")
    args = parser.parse_args(argv)

    big_size = 128 * MIB if args.quick else GIB
    settings = Settings(
        small_files=200 if args.quick else 1000,
        small_size=4 * KIB,
        big_size=big_size,
        moto_big_size=min(big_size, args.moto_big_mib * MIB) if args.moto_big_mib else big_size,
        rounds=args.rounds or (1 if args.quick else 3),
    )

    servers = ["relay", "moto"]
    moto_skipped = "--no-moto given" if args.no_moto else moto_unavailable_reason()
    if moto_skipped:
        print(f"moto: SKIPPED: {moto_skipped}")
        servers = ["relay"]

    steps: list[Step] = []
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-s3-", dir=args.workdir))
    try:
        client = Client(workdir / "aws")
        tree = workdir / "tree"
        print(
            f"making {settings.small_files} x {settings.small_size // KIB} KiB files and a "
            f"{settings.big_size // MIB} MiB file in {workdir}"
        )
        make_small_tree(tree, settings.small_files, settings.small_size)
        big = workdir / "big.bin"
        digest = make_big_file(big, settings.big_size)
        moto_big, moto_digest = big, digest
        if settings.moto_big_size != settings.big_size:
            moto_big = workdir / "big-moto.bin"
            moto_digest = make_big_file(moto_big, settings.moto_big_size)
            print(
                f"moto: big-file scenario CAPPED at {settings.moto_big_size // MIB} MiB;"
                " compare per-MiB rates"
            )

        for round_number in range(settings.rounds):
            order = servers if round_number % 2 == 0 else servers[::-1]
            for kind in order:
                new = run_sync(
                    kind, client, workdir, notes, tree, settings.small_files, round_number
                )
                if kind == "moto":
                    new += run_big(
                        kind,
                        client,
                        workdir,
                        notes,
                        moto_big,
                        settings.moto_big_size,
                        moto_digest,
                        round_number,
                    )
                else:
                    new += run_big(
                        kind, client, workdir, notes, big, settings.big_size, digest, round_number
                    )
                for step in new:
                    print(
                        f"round {round_number} {kind:<5} {step.step:<8}"
                        f" {step.wall_seconds:7.2f} s {step.throughput:9.1f} {step.unit:<9}"
                        f" server CPU {step.server_cpu_seconds:6.2f} s"
                        f" peak RSS {step.server_peak_rss_mib:7.1f} MiB"
                        f" client CPU {step.client_cpu_seconds:6.2f} s",
                        flush=True,
                    )
                steps += new
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print_tables(steps, servers)
    for note in sorted(set(notes)):
        print(f"note: {note}")
    if not all(s.peak_rss_is_per_step for s in steps):
        print("note: /proc/<pid>/clear_refs refused; peak RSS is since the server started")
    result = {
        "settings": asdict(settings),
        "moto_skipped": moto_skipped,
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "relay": distribution_version("relay"),
            "moto": distribution_version("moto"),
            "awscli": distribution_version("awscli"),
            "botocore": distribution_version("botocore"),
        },
        "notes": sorted(set(notes)),
        "summary": summarize(steps, servers),
        "steps": [asdict(s) | {"throughput": s.throughput} for s in steps],
    }
    path = save("s3", result)
    print(f"\nresults in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
