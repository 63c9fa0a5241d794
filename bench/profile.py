"""py-spy attached to a running server, and the top functions of what it recorded.

``attached(pid, out)`` runs ``py-spy record --pid PID --format raw`` (collapsed stacks:
``frame;frame;frame count`` a line) for as long as the block runs, then stops it with
SIGINT so it writes its file. ``top_functions`` reads such a file: self samples count the
innermost frame only, inclusive samples count each distinct frame of a stack once.

``python -m bench.profile FILE [N]`` prints the top N of a recorded file.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from bench.peers import BIN

SAMPLES_PER_SECOND: Final = 100


def py_spy() -> str | None:
    local = BIN / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@contextmanager
def attached(pid: int, out: Path) -> Iterator[None]:
    executable = py_spy()
    if executable is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log").open("wb")
    recorder = subprocess.Popen(
        [
            executable,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            str(SAMPLES_PER_SECOND),
            "--threads",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()
        log.close()


def _frame_name(frame: str) -> str:
    # py-spy raw frames read "function (path/to/file.py:line)"; drop the line number.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/relay/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/relay/":
                path = "relay/" + path
            break
    return f"{name} ({path})"


def top_functions(
    raw: Path, count: int = 15
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(total samples, top self, top inclusive) of a py-spy raw file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        frames = [_frame_name(f) for f in stack.split(";") if not f.startswith("thread (")]
        if not frames:
            continue
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    return total, own.most_common(count), inclusive.most_common(count)


def format_top(raw: Path, count: int = 15) -> str:
    total, own, inclusive = top_functions(raw, count)
    lines = [f"{raw.name}: {total} samples"]
    lines.append("  self:")
    lines += [f"    {100 * n / max(total, 1):5.1f}%  {name}" for name, n in own]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / max(total, 1):5.1f}%  {name}" for name, n in inclusive]
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_top(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15))
