"""relay against the S3 servers a user would otherwise pick, on the work relay exists for.

Run: ``.venv/bin/python -m bench [--quick] [--rounds N] [--scenarios a,b] [--servers a,b]``

Peers (started here on 127.0.0.1 and stopped after): moto's standalone server and s3rver
(installed from npm into bench/.node when node is present); relay-2w is relay with two
worker processes, its CPU and RSS summed over them. A peer that cannot be had is
skipped with the reason printed. Clients: the aws CLI and s5cmd (plus boto3 for ranged
reads). Scenarios: see bench.scenarios. Each round runs every server in turn, the order
rotating from round to round, so relay/peer ratios are taken pair by pair within a round.

Writes bench/results/compare.json (compare-quick.json with --quick) and PNG charts
beside it in compare/ (compare-quick/), and prints a summary table and the targets.
``--profile-relay`` records every relay server with py-spy into bench/results/profiles/.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from bench import charts, report
from bench.common import RESULTS, save
from bench.peers import BENCH_DIR, MIB, PEERS, Peer, unavailable_reason, versions
from bench.profile import format_top
from bench.scenarios import (
    FULL,
    QUICK,
    SCENARIOS,
    Context,
    Data,
    Step,
    client_environment,
    fill_listing_bucket,
    list_keys_for,
    run_big,
    run_concurrent,
    run_listing_round,
    run_small_puts,
    run_sync,
    serve,
)

DEFAULT_SERVERS = ("relay", "moto", "s3rver")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (< 3 min)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, 1 with --quick)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {SCENARIOS}"
    )
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated, of {tuple(PEERS)}; relay-2w is relay --workers 2 (CPU and"
        " RSS summed over its processes); relay-malloc is relay with glibc's"
        " mmap/trim thresholds raised through the environment",
    )
    parser.add_argument("--list-keys", type=int, help="keys in the listing bucket")
    parser.add_argument(
        "--moto-list-keys", type=int, help="cap moto's listing bucket (it stores ~250 keys/s)"
    )
    parser.add_argument(
        "--moto-big-mib",
        type=int,
        help="cap moto's big file (the aws CLI's ranged download of 1 GiB takes it ~85 s)",
    )
    parser.add_argument(
        "--moto-ranged-reads", type=int, help="cap moto's ranged reads (~2/s on 1 GiB)"
    )
    parser.add_argument(
        "--datadir",
        type=Path,
        default=BENCH_DIR / ".data",
        help="where the generated input files are kept between runs (default bench/.data)",
    )
    parser.add_argument("--workdir", type=Path, help="scratch directory on local disk")
    parser.add_argument("--name", help="result name (default compare or compare-quick)")
    parser.add_argument(
        "--profile-relay", action="store_true", help="record relay with py-spy (skews figures)"
    )
    return parser.parse_args(argv)


def _servers(requested: str) -> tuple[list[Peer], dict[str, str]]:
    peers: list[Peer] = []
    skipped: dict[str, str] = {}
    for name in [n.strip() for n in requested.split(",") if n.strip()]:
        reason = unavailable_reason(name)
        if reason is not None:
            print(f"{name}: SKIPPED: {reason}", flush=True)
            skipped[name] = reason
        else:
            peers.append(PEERS[name])
    return peers, skipped


def _line(step: Step) -> str:
    errors = f"  ERRORS {step.errors}: {step.error_sample[:160]}" if step.errors else ""
    return (
        f"r{step.round} {step.server:<12} {step.key:<32} {step.wall_seconds:7.2f} s"
        f" {step.throughput:>10,.1f} {step.throughput_unit:<10}"
        f" server CPU {step.server_cpu_seconds:6.2f} s  peak RSS {step.server_peak_rss_mib:7.1f}"
        f" MiB  client CPU {step.client_cpu_seconds:6.2f} s{errors}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    started = time.monotonic()
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = replace(sizes, rounds=args.rounds)
    if args.list_keys:
        sizes = replace(sizes, list_keys=args.list_keys, moto_list_keys=args.list_keys)
    if args.moto_list_keys:
        sizes = replace(sizes, moto_list_keys=args.moto_list_keys)
    if args.moto_ranged_reads:
        sizes = replace(sizes, moto_ranged_reads=args.moto_ranged_reads)
    if args.moto_big_mib:
        sizes = replace(sizes, moto_big_size=min(sizes.big_size, args.moto_big_mib * MIB))
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenarios {sorted(unknown)}; known: {SCENARIOS}")
        return 2

    peers, skipped = _servers(args.servers)
    if not peers:
        print("no server to benchmark")
        return 2
    names = [p.name for p in peers]
    caps: list[str] = []
    if "moto" in names and sizes.moto_list_keys < sizes.list_keys and "listing" in scenarios:
        caps.append(
            f"moto: listing bucket CAPPED at {sizes.moto_list_keys:,} keys (others"
            f" {sizes.list_keys:,}): moto stores ~300 keys/s, so filling it would take"
            f" {sizes.list_keys / 300 / 60:.0f} min; compare keys/s (--moto-list-keys)"
        )
    if "moto" in names and sizes.moto_concurrent_size < sizes.concurrent_size:
        if "concurrent" in scenarios:
            caps.append(
                f"moto: scenario 4 CAPPED at {sizes.concurrent_files} x"
                f" {sizes.moto_concurrent_size // MIB} MiB (others"
                f" {sizes.concurrent_files} x {sizes.concurrent_size // MIB} MiB): moto keeps"
                " uploads in memory at ~2.5x their size, which would exhaust this machine;"
                " compare rates and CPU per GiB, not wall time or peak RSS"
            )
    if "moto" in names and sizes.moto_big_size < sizes.big_size and "big" in scenarios:
        caps.append(
            f"moto: scenario 3 CAPPED at {sizes.moto_big_size // MIB} MiB (others"
            f" {sizes.big_size // MIB} MiB), and its ranged reads read that object: moto"
            " copies the whole object for each ranged GET, so the aws CLI's download of"
            " 1 GiB in 8 MiB ranges takes it ~85 s; compare MB/s and CPU per GiB"
            " (--moto-big-mib)"
        )
    if "moto" in names and sizes.moto_ranged_reads < sizes.ranged_reads:
        if "ranged-reads" in scenarios:
            caps.append(
                f"moto: ranged reads CAPPED at {sizes.moto_ranged_reads:,} (others"
                f" {sizes.ranged_reads:,}): moto copies the whole object for each ranged"
                " read (~2 reads/s from 1 GiB); compare reads/s (--moto-ranged-reads)"
            )
    for cap in caps:
        print(cap)

    workdir = Path(tempfile.mkdtemp(prefix="bench-compare-", dir=args.workdir))
    aws, s5cmd, ranged = client_environment(workdir)
    for client_reason in (aws.unavailable_reason(), s5cmd.unavailable_reason()):
        if client_reason:
            print(f"cannot run: {client_reason}")
            return 2

    data = Data(args.datadir, sizes)
    missing = data.missing_bytes()
    with tqdm(
        total=missing, unit="B", unit_scale=True, desc="making input files", disable=not missing
    ) as bar:
        data.make(bar.update)

    name = args.name or ("compare-quick" if args.quick else "compare")
    profile_dir = RESULTS / "profiles" / name if args.profile_relay else None
    steps: list[Step] = []
    notes: list[str] = []

    def order(round_number: int) -> list[Peer]:
        shift = round_number % len(peers)
        return peers[shift:] + peers[:shift]

    sessions: list[tuple[str, int, Peer]] = []
    for scenario in scenarios:
        if scenario in ("listing", "ranged-reads"):
            continue
        for round_number in range(sizes.rounds):
            sessions += [(scenario, round_number, p) for p in order(round_number)]
    if "ranged-reads" in scenarios and "big" not in scenarios:
        for round_number in range(sizes.rounds):
            sessions += [("big", round_number, p) for p in order(round_number)]
    listing_rounds = sizes.rounds * len(peers) if "listing" in scenarios else 0

    bar = tqdm(total=len(sessions) + listing_rounds, desc="sessions", unit="session")

    def record(step: Step) -> None:
        tqdm.write(_line(step))
        steps.append(step)

    context = Context(
        workdir=workdir,
        data=data,
        sizes=sizes,
        aws=aws,
        s5cmd=s5cmd,
        ranged=ranged,
        notes=notes,
        report=record,
        profile_dir=profile_dir,
    )
    try:
        for scenario, round_number, peer in sessions:
            bar.set_description(f"{scenario} r{round_number} {peer.name}")
            try:
                if scenario == "sync":
                    run_sync(context, peer, round_number)
                elif scenario == "small-puts":
                    run_small_puts(context, peer, round_number)
                elif scenario == "big":
                    run_big(context, peer, round_number, "ranged-reads" in scenarios)
                elif scenario == "concurrent":
                    run_concurrent(context, peer, round_number)
            except RuntimeError as error:
                note = f"{peer.name} {scenario} r{round_number} failed: {error}"
                tqdm.write(f"note: {note}")
                notes.append(note)
            bar.update()
        if listing_rounds:
            _listing(context, peers, bar)
    finally:
        bar.close()
        shutil.rmtree(workdir, ignore_errors=True)

    records = [
        asdict(s) | {"throughput": s.throughput, "throughput_unit": s.throughput_unit}
        for s in steps
    ]
    rounds = sizes.rounds
    summary = report.summarize(records, names)
    goals = report.targets(summary, names)
    result: dict[str, Any] = {
        "quick": args.quick,
        "sizes": asdict(sizes),
        "servers": names,
        "skipped": skipped,
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            **versions(),
        },
        "elapsed_seconds": time.monotonic() - started,
        "notes": caps + sorted(set(notes)),
        "targets": goals,
        "summary": summary,
        "steps": records,
    }
    path = save(name, result)
    pictures = charts.draw(result, RESULTS / name)

    print()
    print("\n".join(report.table_lines(summary, names, rounds)))
    print()
    print("\n".join(report.target_lines(goals, args.quick)))
    for server, reason in skipped.items():
        print(f"skipped {server}: {reason}")
    for note in caps + sorted(set(notes)):
        print(f"note: {note}")
    if not all(s.peak_rss_is_per_step for s in steps):
        print("note: /proc/<pid>/clear_refs refused; peak RSS is since the server started")
    if profile_dir is not None and profile_dir.exists():
        for raw in sorted(profile_dir.glob("*.txt")):
            print(format_top(raw, 10))
    print(f"\nresults in {path}; charts: {', '.join(str(p) for p in pictures)}")
    print(f"took {result['elapsed_seconds'] / 60:.1f} min")
    return 0


def _listing(context: Context, peers: list[Peer], bar: Any) -> None:
    """Scenario 5: every server up at once, each filled once, then listed in rounds."""
    from contextlib import ExitStack

    sizes = context.sizes
    with ExitStack() as stack:
        servers = {}
        for peer in peers:
            server = stack.enter_context(serve(context, peer, "listing"))
            keys = list_keys_for(sizes, peer)
            with tqdm(
                total=keys, desc=f"filling {peer.name}'s bucket", unit="key", leave=False
            ) as fill:
                fill_listing_bucket(context, peer, server, keys, fill.update)
            servers[peer.name] = (server, keys)
        for round_number in range(sizes.rounds):
            shift = round_number % len(peers)
            for peer in peers[shift:] + peers[:shift]:
                bar.set_description(f"listing r{round_number} {peer.name}")
                server, keys = servers[peer.name]
                run_listing_round(context, peer, server, keys, round_number)
                bar.update()


if __name__ == "__main__":
    sys.exit(main())
