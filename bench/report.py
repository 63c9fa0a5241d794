"""Medians, pair-by-pair ratios, the issue's targets, and the summary table.

Everything here works on plain step records (the dicts saved in the JSON), so a saved
result can be summarized and charted again without rerunning anything.

A ratio relay/peer is taken within one round (same data, adjacent in time), per unit of
work, and reported as median [min-max] over the rounds: below 1 means relay took less.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any, Final

GIB: Final = 1024**3
Record = dict[str, Any]


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(summary: dict[str, float] | None, digits: int = 1) -> str:
    if summary is None:
        return "-"
    middle, low, high = summary["median"], summary["min"], summary["max"]
    if low == high:
        return f"{middle:,.{digits}f}"
    return f"{middle:,.{digits}f} [{low:,.{digits}f}-{high:,.{digits}f}]"


def step_key(step: Record) -> str:
    return f"{step['scenario']}/{step['step']}/{step['client']}"


def cpu_per_gib(step: Record) -> float | None:
    if not step["bytes_moved"]:
        return None
    return float(step["server_cpu_seconds"]) / (float(step["bytes_moved"]) / GIB)


def cpu_ms_per_unit(step: Record) -> float:
    return 1000 * float(step["server_cpu_seconds"]) / float(step["units"])


def ordered_keys(steps: Sequence[Record]) -> list[str]:
    seen: dict[str, None] = {}
    for step in steps:
        seen.setdefault(step_key(step), None)
    return list(seen)


def summarize(steps: Sequence[Record], servers: Sequence[str]) -> dict[str, Any]:
    """Per step key: per server medians, and per peer the relay/peer ratios."""
    summary: dict[str, Any] = {}
    for key in ordered_keys(steps):
        mine = [s for s in steps if step_key(s) == key]
        entry: dict[str, Any] = {"servers": {}, "ratios": {}}
        first = mine[0]
        entry["unit"] = first["unit"]
        entry["units"] = first["units"]
        entry["throughput_unit"] = first["throughput_unit"]
        for server in servers:
            theirs = [s for s in mine if s["server"] == server]
            if not theirs:
                continue
            per_gib = [
                v for v in (cpu_per_gib(s) for s in theirs if s["unit"] == "bytes") if v is not None
            ]
            entry["servers"][server] = {
                "rounds": len(theirs),
                "units": theirs[0]["units"],
                "wall_seconds": spread([s["wall_seconds"] for s in theirs]),
                "throughput": spread([s["throughput"] for s in theirs]),
                "server_cpu_seconds": spread([s["server_cpu_seconds"] for s in theirs]),
                "server_cpu_ms_per_unit": spread([cpu_ms_per_unit(s) for s in theirs]),
                "server_cpu_seconds_per_gib": spread(per_gib) if per_gib else None,
                "server_peak_rss_mib": spread([s["server_peak_rss_mib"] for s in theirs]),
                "client_cpu_seconds": spread([s["client_cpu_seconds"] for s in theirs]),
                "errors": sum(s["errors"] for s in theirs),
            }
        relay = {s["round"]: s for s in mine if s["server"] == "relay"}
        for server in servers:
            if server == "relay":
                continue
            pairs = [(relay[s["round"]], s) for s in mine if s["server"] == server]
            pairs = [(a, b) for a, b in pairs if a["round"] in relay]
            if not pairs:
                continue
            entry["ratios"][server] = {
                "rounds": len(pairs),
                "time_per_unit": spread(
                    [
                        (a["wall_seconds"] / a["units"]) / (b["wall_seconds"] / b["units"])
                        for a, b in pairs
                    ]
                ),
                "server_cpu_per_unit": spread(
                    [
                        (a["server_cpu_seconds"] / a["units"])
                        / max(b["server_cpu_seconds"] / b["units"], 1e-9)
                        for a, b in pairs
                    ]
                ),
                "server_peak_rss": spread(
                    [a["server_peak_rss_mib"] / b["server_peak_rss_mib"] for a, b in pairs]
                ),
            }
        summary[key] = entry
    return summary


# ----------------------------------------------------------------------------- targets


def _metric(
    summary: dict[str, Any], key: str, server: str, metric: str, which: str = "median"
) -> float | None:
    entry = summary.get(key, {}).get("servers", {}).get(server)
    if entry is None or entry.get(metric) is None:
        return None
    value: float = entry[metric][which]
    return value


def _ratio(summary: dict[str, Any], key: str, peer: str, metric: str) -> float | None:
    entry = summary.get(key, {}).get("ratios", {}).get(peer)
    if entry is None:
        return None
    value: float = entry[metric]["median"]
    return value


Check = Callable[[dict[str, Any]], tuple[float | None, str]]


def targets(summary: dict[str, Any], peers: Sequence[str]) -> list[dict[str, Any]]:
    """The issue's targets, each met, missed, or not measured (with why)."""
    results: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, met: bool | None, shown: str) -> None:
        results.append(
            {
                "target": name,
                "goal": goal,
                "value": value,
                "shown": shown,
                "met": met,
            }
        )

    s5_up = "big/upload/s5cmd"
    ratio = _ratio(summary, s5_up, "s3rver", "server_cpu_per_unit")
    add(
        "server CPU per GiB uploaded, relay/s3rver (1 GiB, s5cmd)",
        ratio,
        "<= 0.333",
        None if ratio is None else ratio <= 1 / 3,
        "s3rver not run" if ratio is None else f"{ratio:.2f}",
    )
    for step, label in (("upload", "upload"), ("download", "download")):
        value = _metric(summary, f"big/{step}/s5cmd", "relay", "throughput")
        add(
            f"relay 1 GiB {label} with s5cmd",
            value,
            ">= 300 MB/s",
            None if value is None else value >= 300,
            "-" if value is None else f"{value:,.0f} MB/s",
        )
    small = next((k for k in summary if k.startswith("small-puts/")), "")
    value = _metric(summary, small, "relay", "throughput")
    add(
        "relay small PUTs, s5cmd 64 workers",
        value,
        ">= 2,000 objects/s",
        None if value is None else value >= 2000,
        "-" if value is None else f"{value:,.0f} objects/s",
    )
    concurrent = next((k for k in summary if k.startswith("concurrent/")), "")
    value = _metric(summary, concurrent, "relay", "server_peak_rss_mib", "max")
    add(
        "relay peak RSS, 10 concurrent 1 GiB uploads (max over rounds)",
        value,
        "<= 100 MiB",
        None if value is None else value <= 100,
        "-" if value is None else f"{value:,.0f} MiB",
    )
    value = _metric(summary, "listing/list-all/s5cmd", "relay", "throughput")
    add(
        "relay listing, s5cmd page by page",
        value,
        ">= 20,000 keys/s",
        None if value is None else value >= 20_000,
        "-" if value is None else f"{value:,.0f} keys/s",
    )
    return results


# ----------------------------------------------------------------------------- the table


def table_lines(summary: dict[str, Any], servers: Sequence[str], rounds: int) -> list[str]:
    lines = [
        f"Per step and server: median [min-max] over {rounds} round(s);"
        " CPU and RSS are the server process's own.",
        f"  {'step':<30} {'server':<13} {'wall s':>19} {'throughput':>31}"
        f" {'server CPU s':>19} {'CPU s/GiB':>8} {'peak RSS MiB':>19}"
        f" {'client CPU':>10} {'err':>4}",
    ]
    for key, entry in summary.items():
        for server in servers:
            figures = entry["servers"].get(server)
            if figures is None:
                continue
            per_gib = figures["server_cpu_seconds_per_gib"]
            per_gib_text = "-" if per_gib is None else f"{per_gib['median']:.1f}"
            throughput = f"{fmt(figures['throughput'], 0)} {entry['throughput_unit']}"
            lines.append(
                f"  {key:<30} {server:<13} {fmt(figures['wall_seconds'], 2):>19}"
                f" {throughput:>31}"
                f" {fmt(figures['server_cpu_seconds'], 2):>19}"
                f" {per_gib_text:>8}"
                f" {fmt(figures['server_peak_rss_mib'], 0):>19}"
                f" {figures['client_cpu_seconds']['median']:>10.2f}"
                f" {figures['errors']:>4}"
            )
    lines.append("")
    lines.append(
        "relay / peer, pair by pair per round, median [min-max] (below 1: relay took less)"
    )
    lines.append(
        f"  {'step':<30} {'peer':<13} {'time per unit':>22} {'server CPU per unit':>22}"
        f" {'peak RSS':>22}"
    )
    for key, entry in summary.items():
        for peer, ratio in entry["ratios"].items():
            lines.append(
                f"  {key:<30} {peer:<13} {fmt(ratio['time_per_unit'], 2):>22}"
                f" {fmt(ratio['server_cpu_per_unit'], 2):>22}"
                f" {fmt(ratio['server_peak_rss'], 2):>22}"
            )
    return lines


def target_lines(results: Sequence[dict[str, Any]], quick: bool) -> list[str]:
    lines = ["Targets" + (" (--quick: smaller sizes, indicative only)" if quick else "")]
    for result in results:
        verdict = {True: "MET", False: "MISSED", None: "not measured"}[result["met"]]
        lines.append(
            f"  {verdict:<12} {result['target']:<62} {result['shown']:>16}  (goal {result['goal']})"
        )
    return lines
