"""PNG charts of a comparison run, readable at a glance.

* ``throughput.png``: one panel per step, a bar per server (median), whiskers min-max,
  a dashed line where the issue sets a target.
* ``cpu.png``: the server's CPU seconds per GiB for the steps that move big bodies, and
  CPU milliseconds per request for the many-small-requests steps.
* ``memory.png``: the server's RSS over time during scenario 4 (every round, one colour
  per server), with relay's 100 MiB target.

``python -m bench.charts bench/results/compare.json`` redraws them from a saved run.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

COLOURS: Final = {
    "relay": "#1b7837",
    "relay-malloc": "#5aae61",
    "relay-2w": "#a6dba0",
    "moto": "#2166ac",
    "s3rver": "#b2182b",
}
TARGETS: Final = {
    "big/upload/s5cmd": 300.0,
    "big/download/s5cmd": 300.0,
    "listing/list-all/s5cmd": 20_000.0,
}
SMALL_PUT_TARGET: Final = 2000.0
RSS_TARGET_MIB: Final = 100.0


def _colour(server: str) -> str:
    return COLOURS.get(server, "#777777")


def _bars(axis: Any, servers: Sequence[str], figures: dict[str, Any], metric: str) -> None:
    present = [s for s in servers if s in figures and figures[s].get(metric) is not None]
    medians = [figures[s][metric]["median"] for s in present]
    lows = [figures[s][metric]["median"] - figures[s][metric]["min"] for s in present]
    highs = [figures[s][metric]["max"] - figures[s][metric]["median"] for s in present]
    positions = list(range(len(present)))
    axis.bar(
        positions,
        medians,
        color=[_colour(s) for s in present],
        yerr=[lows, highs],
        capsize=4,
    )
    axis.set_xticks(positions, present)
    top = max([*medians, 0.0])
    for x, value in zip(positions, medians, strict=True):
        axis.text(
            x,
            value + top * 0.02,
            f"{value:,.0f}" if value >= 10 else f"{value:.2f}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axis.set_ylim(0, top * 1.25 if top else 1)


def _grid(count: int) -> tuple[int, int]:
    columns = min(4, count)
    return math.ceil(count / columns), columns


def _save(figure: Any, path: Path, *, unused_axes: Sequence[Any] = ()) -> Path:
    """Blank the grid cells no panel used, lay out, write the PNG, free the figure."""
    import matplotlib.pyplot as plt

    for axis in unused_axes:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _unused(axes: Any, used: int, rows: int, columns: int) -> list[Any]:
    return [axes[index // columns][index % columns] for index in range(used, rows * columns)]


def draw(result: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = result["summary"]
    servers: list[str] = result["servers"]
    title_note = " (--quick)" if result.get("quick") else ""
    written: list[Path] = []

    # Throughput, one panel per step.
    keys = list(summary)
    rows, columns = _grid(len(keys))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for index, key in enumerate(keys):
        axis = axes[index // columns][index % columns]
        entry = summary[key]
        _bars(axis, servers, entry["servers"], "throughput")
        axis.set_title(key, fontsize=10)
        axis.set_ylabel(entry["throughput_unit"])
        target = TARGETS.get(key, SMALL_PUT_TARGET if key.startswith("small-puts/") else None)
        if target is not None:
            axis.axhline(target, color="black", linestyle="--", linewidth=1)
            axis.set_ylim(0, max(axis.get_ylim()[1], target * 1.15))
            axis.text(axis.get_xlim()[0], target, f" target {target:,.0f}", fontsize=7, va="bottom")
    figure.suptitle(
        "Throughput per step (higher is better; bar = median, whiskers = min-max)" + title_note
    )
    unused = _unused(axes, len(keys), rows, columns)
    written.append(_save(figure, out_dir / "throughput.png", unused_axes=unused))

    # CPU per GiB (big bodies) and per request (small ones).
    byte_keys = [k for k in keys if summary[k]["unit"] == "bytes"]
    unit_keys = [k for k in keys if summary[k]["unit"] != "bytes"]
    panels = [(k, "server_cpu_seconds_per_gib", "server CPU s per GiB") for k in byte_keys]
    panels += [
        (k, "server_cpu_ms_per_unit", f"server CPU ms per {summary[k]['unit'][:-1]}")
        for k in unit_keys
    ]
    rows, columns = _grid(len(panels))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for index, (key, metric, label) in enumerate(panels):
        axis = axes[index // columns][index % columns]
        _bars(axis, servers, summary[key]["servers"], metric)
        axis.set_title(key, fontsize=10)
        axis.set_ylabel(label)
    figure.suptitle(
        "Server CPU (from the server process's own accounting; lower is better)" + title_note
    )
    unused = _unused(axes, len(panels), rows, columns)
    written.append(_save(figure, out_dir / "cpu.png", unused_axes=unused))

    # Memory over time in scenario 4.
    series = [s for s in result["steps"] if s["scenario"] == "concurrent" and s["rss_over_time"]]
    if series:
        figure, axis = plt.subplots(figsize=(9, 4.5))
        labelled: set[str] = set()
        for step in series:
            times = [t for t, _ in step["rss_over_time"]]
            rss = [m for _, m in step["rss_over_time"]]
            server = step["server"]
            axis.plot(
                times,
                rss,
                color=_colour(server),
                alpha=0.9 if server not in labelled else 0.45,
                label=server if server not in labelled else None,
            )
            labelled.add(server)
        axis.axhline(RSS_TARGET_MIB, color="black", linestyle="--", linewidth=1)
        axis.text(0, RSS_TARGET_MIB, " relay target 100 MiB", fontsize=8, va="bottom")
        peak = max(m for s in series for _, m in s["rss_over_time"])
        if peak > 20 * RSS_TARGET_MIB:
            axis.set_yscale("log")
        axis.set_xlabel("seconds since the uploads started")
        axis.set_ylabel("server RSS, MiB")
        first = series[0]
        axis.set_title(
            f"Server memory during {first['step']} (scenario 4), every round" + title_note
        )
        axis.legend()
        axis.grid(alpha=0.3)
        written.append(_save(figure, out_dir / "memory.png"))
    return written


def main(argv: Sequence[str]) -> int:
    source = Path(argv[0]) if argv else Path(__file__).parent / "results" / "compare.json"
    result = json.loads(source.read_text())
    for path in draw(result, source.with_suffix("")):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
