"""The six scenarios relay exists for, each run against one server at a time.

1. ``sync``: ``aws s3 sync`` and ``s5cmd sync`` of N x 4 KiB files into a fresh bucket,
   then the same sync again with nothing changed (listing and comparing only).
2. ``small-puts``: ``s5cmd --numworkers 64 cp`` of M x 4 KiB files.
3. ``big``: a 1 GiB file up and down with each client (its sha256 is checked).
4. ``concurrent``: 10 different 1 GiB files uploaded at once (``s5cmd --numworkers 10``),
   the server's RSS sampled every 0.1 s.
5. ``listing``: a K-key bucket listed page by page (1,000 keys a page) by each client.
6. ``ranged-reads``: R random 1 MiB ranged GETs of the 1 GiB object, 8 at a time, each
   compared with the local file.

A ``Step`` is one timed client command: wall time, units moved, the server's CPU seconds
and peak RSS over exactly that command (see bench.peers), the client's CPU seconds and the
errors seen (failed operations, wrong counts, content that differs). A wrong answer is
recorded as errors rather than raised, so one broken peer does not sink the whole run.

Scenarios 1-4 and 6 start a fresh server per (round, server) so each server's figures are
its own; scenario 5 starts every server once, fills each bucket once (untimed, the slow
part), and then lists in rounds, so its ratios are still taken pair by pair per round.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

from bench.clients import AwsCli, ClientEnvironment, ClientRun, RangedReader, S5cmd
from bench.peers import (
    KIB,
    MIB,
    Peer,
    RssSampler,
    Server,
    make_big_file,
    running,
    sha256_file,
)
from bench.profile import attached

SCENARIOS: Final = ("sync", "small-puts", "big", "concurrent", "listing", "ranged-reads")
SMALL_PUT_WORKERS: Final = 64
LISTING_FILL_WORKERS: Final = 64
RANGED_READ_THREADS: Final = 8
RSS_SAMPLE_SECONDS: Final = 0.1


@dataclass(frozen=True, slots=True)
class Sizes:
    sync_files: int
    small_size: int
    small_puts: int
    big_size: int
    # moto copies the whole object for each ranged GET, and the aws CLI downloads in 8 MiB
    # ranges: a 1 GiB download takes ~85 s, a third of a full run.
    moto_big_size: int
    concurrent_files: int
    concurrent_size: int
    list_keys: int
    # moto stores ~250-400 objects/s: filling 100,000 keys alone would take ~5 minutes.
    moto_list_keys: int
    # moto holds uploads in memory at ~2.5x their size: 10 x 1 GiB would exhaust 24 GiB.
    moto_concurrent_size: int
    ranged_reads: int
    # moto answers ranged GETs of a 1 GiB object at ~2/s (it copies the object for each).
    moto_ranged_reads: int
    read_size: int
    rounds: int


FULL: Final = Sizes(
    sync_files=1000,
    small_size=4 * KIB,
    small_puts=10_000,
    big_size=1024 * MIB,
    moto_big_size=256 * MIB,
    concurrent_files=10,
    concurrent_size=1024 * MIB,
    list_keys=100_000,
    moto_list_keys=20_000,
    moto_concurrent_size=256 * MIB,
    ranged_reads=1000,
    moto_ranged_reads=20,
    read_size=MIB,
    rounds=3,
)
QUICK: Final = Sizes(
    sync_files=200,
    small_size=4 * KIB,
    small_puts=2000,
    big_size=128 * MIB,
    moto_big_size=128 * MIB,
    concurrent_files=10,
    concurrent_size=32 * MIB,
    list_keys=5000,
    moto_list_keys=5000,
    moto_concurrent_size=32 * MIB,
    ranged_reads=200,
    moto_ranged_reads=20,
    read_size=MIB,
    rounds=1,
)


@dataclass(slots=True)
class Step:
    """One timed client command against one server."""

    scenario: str
    step: str
    client: str
    server: str
    round: int
    wall_seconds: float
    units: float
    unit: str  # "objects", "bytes", "keys" or "reads"
    bytes_moved: int
    server_cpu_seconds: float
    server_peak_rss_mib: float
    peak_rss_is_per_step: bool
    client_cpu_seconds: float
    errors: int
    error_sample: str = ""
    rss_over_time: list[tuple[float, float]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.scenario}/{self.step}/{self.client}"

    @property
    def throughput(self) -> float:
        """MB/s (10^6 bytes) for byte steps, units per second otherwise."""
        scale = 1e6 if self.unit == "bytes" else 1.0
        return self.units / scale / self.wall_seconds

    @property
    def throughput_unit(self) -> str:
        return "MB/s" if self.unit == "bytes" else f"{self.unit}/s"

    @property
    def server_cpu_per_gib(self) -> float:
        return self.server_cpu_seconds / (self.bytes_moved / (1024 * MIB))


# ----------------------------------------------------------------------------- the data


@dataclass(frozen=True, slots=True)
class Data:
    """The local files every scenario reads, made once and kept in ``root`` between runs."""

    root: Path
    sizes: Sizes

    @property
    def sync_tree(self) -> Path:
        return self.root / f"sync-{self.sizes.sync_files}x{self.sizes.small_size}"

    @property
    def small_tree(self) -> Path:
        return self.root / f"small-{self.sizes.small_puts}x{self.sizes.small_size}"

    def concurrent_dir(self, size: int) -> Path:
        return self.root / f"big-{self.sizes.concurrent_files}x{size}"

    def big_file(self, size: int) -> Path:
        return self.root / f"big-{size}.bin"

    def big_sizes(self) -> set[int]:
        return {self.sizes.big_size, self.sizes.moto_big_size}

    @property
    def empty_file(self) -> Path:
        return self.root / "empty"

    def concurrent_sizes(self) -> set[int]:
        return {self.sizes.concurrent_size, self.sizes.moto_concurrent_size}

    def concurrent_files(self, size: int) -> list[Path]:
        folder = self.concurrent_dir(size)
        return [folder / f"part-{n:02d}.bin" for n in range(self.sizes.concurrent_files)]

    def big_digest(self, size: int) -> str:
        sidecar = self.big_file(size).with_suffix(".sha256")
        if not sidecar.exists():
            sidecar.write_text(sha256_file(self.big_file(size)))
        return sidecar.read_text().strip()

    def missing_bytes(self) -> int:
        """How many bytes ``make`` would write."""
        total = sum(size for size in self.big_sizes() if not self.big_file(size).exists())
        for size in self.concurrent_sizes():
            total += sum(size for p in self.concurrent_files(size) if not p.exists())
        return total

    def make(self, progress: Callable[[int], object]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.empty_file.touch()
        _make_small_tree(self.sync_tree, self.sizes.sync_files, self.sizes.small_size, seed=1)
        _make_small_tree(self.small_tree, self.sizes.small_puts, self.sizes.small_size, seed=2)
        for size in self.big_sizes():
            if not self.big_file(size).exists():
                make_big_file(self.big_file(size), size, seed=3, progress=progress)
            self.big_digest(size)
        for size in self.concurrent_sizes():
            self.concurrent_dir(size).mkdir(exist_ok=True)
            for n, path in enumerate(self.concurrent_files(size)):
                if not path.exists():
                    make_big_file(path, size, seed=100 + n, progress=progress)


def _make_small_tree(root: Path, count: int, size: int, seed: int) -> None:
    """``count`` random files of ``size`` bytes over two levels of directories (once)."""
    done = root.parent / f"{root.name}.complete"  # outside the tree: it is not uploaded
    if done.exists():
        return
    import random

    source = random.Random(seed)
    for n in range(count):
        directory = root / f"d{n % 8}" / f"e{n % 5}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{n:05d}.bin").write_bytes(source.randbytes(size))
    done.touch()


# ----------------------------------------------------------------------------- running steps


@dataclass
class Context:
    """What every scenario needs: where to work, the clients, the data, the notes."""

    workdir: Path
    data: Data
    sizes: Sizes
    aws: AwsCli
    s5cmd: S5cmd
    ranged: RangedReader
    notes: list[str]
    report: Callable[[Step], None]
    # When set, py-spy records every relay server into this folder (figures then include
    # the sampler's cost, so a profiling run is for reading profiles, not for numbers).
    profile_dir: Path | None = None


@contextmanager
def serve(context: Context, peer: Peer, label: str) -> Iterator[Server]:
    """A fresh server for one session; relay under py-spy when profiling."""
    with running(peer, context.workdir, context.notes) as server:
        if context.profile_dir is None or not peer.name.startswith("relay"):
            yield server
            return
        out = context.profile_dir / f"{label}-{peer.name}-{server.port}.txt"
        with attached(server.pid, out):
            yield server


def timed(
    server: Server,
    scenario: str,
    step: str,
    client: str,
    round_number: int,
    units: float,
    unit: str,
    bytes_moved: int,
    action: Callable[[], ClientRun],
    count_errors: Callable[[ClientRun], tuple[int, str]],
    sample_rss: bool = False,
) -> Step:
    per_step = server.reset_peak_rss()
    sampler = RssSampler(server.pid, RSS_SAMPLE_SECONDS) if sample_rss else None
    cpu_before = server.cpu_seconds()
    if sampler is not None:
        sampler.__enter__()
    start = _now()
    try:
        result = action()
    finally:
        wall = _now() - start
        if sampler is not None:
            sampler.__exit__(None, None, None)
    cpu = server.cpu_seconds() - cpu_before
    peak = server.peak_rss_mib()
    errors, sample = count_errors(result)
    return Step(
        scenario=scenario,
        step=step,
        client=client,
        server=server.kind,
        round=round_number,
        wall_seconds=wall,
        units=units,
        unit=unit,
        bytes_moved=bytes_moved,
        server_cpu_seconds=cpu,
        server_peak_rss_mib=peak,
        peak_rss_is_per_step=per_step,
        client_cpu_seconds=result.cpu_seconds,
        errors=errors,
        error_sample=sample,
        rss_over_time=sampler.samples if sampler is not None else [],
    )


def _now() -> float:
    import time

    return time.perf_counter()


_FAILED = re.compile(
    r"^(ERROR|upload failed|download failed|fatal error|An error occurred).*$", re.M
)


def _count_lines(pattern: str, expected: int) -> Callable[[ClientRun], tuple[int, str]]:
    """Errors: failed-operation lines, plus any shortfall or excess against ``expected``."""
    matcher = re.compile(pattern, re.MULTILINE)

    def count(result: ClientRun) -> tuple[int, str]:
        failed = _FAILED.findall(result.output)
        seen = len(matcher.findall(result.output))
        errors = len(failed) + abs(seen - expected)
        if result.returncode != 0 and errors == 0:
            errors = 1
        sample = ""
        if errors:
            first = failed[0] if failed else result.output[-300:]
            sample = f"expected {expected}, saw {seen}; exit {result.returncode}; {first}"
        return errors, sample[:500]

    return count


def _exit_code_only(result: ClientRun) -> tuple[int, str]:
    if result.returncode == 0:
        return 0, ""
    return 1, f"exit {result.returncode}: {result.output[-300:]}"


def _must(result: ClientRun, what: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{what} exited {result.returncode}:\n{result.output[-1000:]}")


# ----------------------------------------------------------------------------- scenarios


def run_sync(context: Context, peer: Peer, round_number: int) -> list[Step]:
    sizes, tree = context.sizes, context.data.sync_tree
    count = sizes.sync_files
    steps: list[Step] = []
    with serve(context, peer, f"sync-r{round_number}") as server:
        endpoint = server.endpoint
        _must(context.aws.run(endpoint, peer, "s3", "mb", "s3://sync"), "aws s3 mb")
        aws_sync = ["s3", "sync", str(tree), "s3://sync/aws", "--no-progress"]
        s5_sync = ["sync", f"{tree}/", "s3://sync/s5cmd/"]
        plans: list[tuple[str, str, list[str], str]] = [
            ("sync-up", "aws", aws_sync, r"^upload: "),
            ("resync", "aws", aws_sync, r"^upload: "),
            ("sync-up", "s5cmd", s5_sync, r"^cp "),
            ("resync", "s5cmd", s5_sync, r"^cp "),
        ]
        for step_name, client_name, arguments, pattern in plans:
            client = context.aws if client_name == "aws" else context.s5cmd
            expected = count if step_name == "sync-up" else 0
            step = timed(
                server,
                "sync",
                step_name,
                client_name,
                round_number,
                count,
                "objects",
                count * sizes.small_size if step_name == "sync-up" else 0,
                partial(client.run, endpoint, peer, *arguments),
                _count_lines(pattern, expected),
            )
            context.report(step)
            steps.append(step)
    return steps


def run_small_puts(context: Context, peer: Peer, round_number: int) -> list[Step]:
    sizes = context.sizes
    count = sizes.small_puts
    with serve(context, peer, f"small-puts-r{round_number}") as server:
        endpoint = server.endpoint
        _must(context.s5cmd.run(endpoint, peer, "mb", "s3://small"), "s5cmd mb")
        arguments = [
            "--numworkers",
            str(SMALL_PUT_WORKERS),
            "cp",
            f"{context.data.small_tree}/*",
            "s3://small/tree/",
        ]
        step = timed(
            server,
            "small-puts",
            f"put-{SMALL_PUT_WORKERS}w",
            "s5cmd",
            round_number,
            count,
            "objects",
            count * sizes.small_size,
            lambda: context.s5cmd.run(endpoint, peer, *arguments),
            _count_lines(r"^cp ", count),
        )
        context.report(step)
        return [step]


def run_big(context: Context, peer: Peer, round_number: int, with_ranged: bool) -> list[Step]:
    """Scenario 3 per client on its own server; scenario 6 after s5cmd's upload."""
    sizes = context.sizes
    size = big_size_for(sizes, peer)
    big, digest = context.data.big_file(size), context.data.big_digest(size)
    steps: list[Step] = []
    for client_name in ("aws", "s5cmd"):
        with serve(context, peer, f"big-{client_name}-r{round_number}") as server:
            endpoint = server.endpoint
            down = context.workdir / f"download-{peer.name}.bin"
            _must(context.s5cmd.run(endpoint, peer, "mb", "s3://big"), "s5cmd mb")
            if client_name == "aws":
                client: AwsCli | S5cmd = context.aws
                up = ["s3", "cp", str(big), "s3://big/big.bin", "--no-progress"]
                get = ["s3", "cp", "s3://big/big.bin", str(down), "--no-progress"]
                up_pattern, down_pattern = r"^upload: ", r"^download: "
            else:
                client = context.s5cmd
                up = ["cp", str(big), "s3://big/big.bin"]
                get = ["cp", "s3://big/big.bin", str(down)]
                up_pattern = down_pattern = r"^cp "
            try:
                for step_name, arguments, pattern in (
                    ("upload", up, up_pattern),
                    ("download", get, down_pattern),
                ):
                    step = timed(
                        server,
                        "big",
                        step_name,
                        client_name,
                        round_number,
                        size,
                        "bytes",
                        size,
                        partial(client.run, endpoint, peer, *arguments),
                        _count_lines(pattern, 1),
                    )
                    if step_name == "download" and not step.errors:
                        if not down.exists() or down.stat().st_size != size:
                            step.errors, step.error_sample = 1, "downloaded size differs"
                        elif sha256_file(down) != digest:
                            step.errors, step.error_sample = 1, "downloaded content differs"
                    context.report(step)
                    steps.append(step)
            finally:
                down.unlink(missing_ok=True)
            if with_ranged and client_name == "s5cmd":
                steps.append(_ranged_reads(context, peer, server, round_number))
    return steps


def _ranged_reads(context: Context, peer: Peer, server: Server, round_number: int) -> Step:
    sizes = context.sizes
    reads = sizes.moto_ranged_reads if peer.name == "moto" else sizes.ranged_reads
    step = timed(
        server,
        "ranged-reads",
        f"get-{sizes.read_size // MIB}MiB-ranges",
        "boto3",
        round_number,
        reads,
        "reads",
        reads * sizes.read_size,
        lambda: context.ranged.run(
            server.endpoint,
            peer,
            "big",
            "big.bin",
            context.data.big_file(big_size_for(sizes, peer)),
            reads,
            sizes.read_size,
            RANGED_READ_THREADS,
            seed=round_number,
        ),
        _count_lines(r"^reads=", 1),
    )
    context.report(step)
    return step


def run_concurrent(context: Context, peer: Peer, round_number: int) -> list[Step]:
    sizes = context.sizes
    size = concurrent_size_for(sizes, peer)
    total = sizes.concurrent_files * size
    with serve(context, peer, f"concurrent-r{round_number}") as server:
        endpoint = server.endpoint
        _must(context.s5cmd.run(endpoint, peer, "mb", "s3://many"), "s5cmd mb")
        arguments = [
            "--numworkers",
            str(sizes.concurrent_files),
            "cp",
            f"{context.data.concurrent_dir(size)}/*",
            "s3://many/",
        ]
        step = timed(
            server,
            "concurrent",
            f"upload-{sizes.concurrent_files}x",
            "s5cmd",
            round_number,
            total,
            "bytes",
            total,
            lambda: context.s5cmd.run(endpoint, peer, *arguments),
            _count_lines(r"^cp ", sizes.concurrent_files),
            sample_rss=True,
        )
        listing = context.s5cmd.run(endpoint, peer, "ls", "s3://many/*")
        stored = re.findall(r"\s(\d+)\s+part-\d+\.bin$", listing.output, re.MULTILINE)
        if not step.errors and (
            len(stored) != sizes.concurrent_files
            or any(int(stored_size) != size for stored_size in stored)
        ):
            step.errors = 1
            step.error_sample = f"listing after upload: {listing.output[-300:]}"
        context.report(step)
        return [step]


# ----------------------------------------------------------------------------- listing


def big_size_for(sizes: Sizes, peer: Peer) -> int:
    return sizes.moto_big_size if peer.name == "moto" else sizes.big_size


def concurrent_size_for(sizes: Sizes, peer: Peer) -> int:
    return sizes.moto_concurrent_size if peer.name == "moto" else sizes.concurrent_size


def list_keys_for(sizes: Sizes, peer: Peer) -> int:
    return sizes.moto_list_keys if peer.name == "moto" else sizes.list_keys


def fill_listing_bucket(
    context: Context, peer: Peer, server: Server, keys: int, progress: Callable[[int], object]
) -> None:
    """``keys`` empty objects under list/, through ``s5cmd run`` with 64 workers (untimed)."""
    endpoint = server.endpoint
    _must(context.s5cmd.run(endpoint, peer, "mb", "s3://listing"), "s5cmd mb")
    batch = 10_000
    empty = context.data.empty_file
    for first in range(0, keys, batch):
        last = min(first + batch, keys)
        commands = context.workdir / f"fill-{peer.name}.txt"
        commands.write_text(
            "".join(
                f"cp {empty} s3://listing/list/d{n % 100:02d}/k{n:06d}\n"
                for n in range(first, last)
            )
        )
        result = context.s5cmd.run(
            endpoint, peer, "--numworkers", str(LISTING_FILL_WORKERS), "run", str(commands)
        )
        _must(result, f"filling {peer.name}'s listing bucket")
        progress(last - first)


def run_listing_round(
    context: Context, peer: Peer, server: Server, keys: int, round_number: int
) -> list[Step]:
    steps: list[Step] = []
    plans: Sequence[tuple[str, AwsCli | S5cmd, list[str], str]] = (
        ("aws", context.aws, ["s3", "ls", "--recursive", "s3://listing/"], r"^\S+ \S+ +\d+ list/"),
        ("s5cmd", context.s5cmd, ["ls", "s3://listing/*"], r"\s0\s+list/"),
    )
    for client_name, client, arguments, pattern in plans:
        step = timed(
            server,
            "listing",
            "list-all",
            client_name,
            round_number,
            keys,
            "keys",
            0,
            partial(client.run, server.endpoint, peer, *arguments),
            _count_lines(pattern, keys),
        )
        context.report(step)
        steps.append(step)
    return steps


def client_environment(workdir: Path) -> tuple[AwsCli, S5cmd, RangedReader]:
    environment = ClientEnvironment(workdir / "clients")
    return AwsCli(environment), S5cmd(environment), RangedReader(environment)
