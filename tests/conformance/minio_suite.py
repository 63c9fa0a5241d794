"""MinIO's functional S3 suite, one test function at a time, against a real relay.

The suite is ``tests/functional/tests.py`` from the ``minio`` sdist on PyPI (version and
sha256 pinned in ``scripts/fetch_minio_suite.sh``, cached under ``.cache/minio-suite/``).
Run as published, its ``main()`` stops at the first failure; here every test function runs
on its own, in a child process (``minio_child.py``) with its own working directory and a
timeout, so each has its own result and a hang or crash costs one test, not the run.

The child reproduces what ``main()`` sets up before calling a test (the ``Minio`` client
from ``SERVER_ENDPOINT``/``ACCESS_KEY``/``SECRET_KEY``/``ENABLE_HTTPS``, and the two data
files ``datafile-1-MB`` and ``datafile-11-MB`` that mint would provide, generated here)
and then calls the suite's own ``_call_test(test_function)``, exactly as ``main()`` does.
Nothing in the suite is edited or patched. ``_call_test`` prints one JSON line with the
status (``PASS``, ``FAIL``, or ``NA`` when relay answered ``NotImplemented``).

Two lists beside this file say what to expect: ``minio_pass.txt`` (one name a line) and
``minio_fail.txt`` (``name  # reason``). ``record.py`` regenerates them.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SUITE_VERSION = "7.2.20"
FETCH_SCRIPT = REPO / "scripts" / "fetch_minio_suite.sh"
SUITE_PATH = REPO / ".cache" / "minio-suite" / f"minio-{SUITE_VERSION}-tests.py"
CHILD = HERE / "minio_child.py"
PASS_LIST = HERE / "minio_pass.txt"
FAIL_LIST = HERE / "minio_fail.txt"

# The slowest test, test_list_objects_with_1001_files, makes 4,000 requests (2,000 PUTs
# and 2,000 DELETEs, one at a time); the rest take seconds. Generous enough for a loaded CI
# machine, short enough that a hung connection does not stall the run for long.
TEST_TIMEOUT_SECONDS = 240.0
MiB = 1 << 20
# main() names and sizes them so; tests compare sizes and checksums against the files.
DATA_FILES = {"datafile-1-MB": 1 * MiB, "datafile-11-MB": 11 * MiB}

sys.path.insert(0, str(HERE.parent / "e2e"))
from e2e_helpers import (  # noqa: E402
    ACCESS_KEY,
    SECRET_KEY,
    RelayProcess,
    start_relay,
    stop_relay,
)


class SuiteMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # PASS, FAIL, NA (relay said NotImplemented), TIMEOUT or CRASH
    first_error_line: str
    detail: str
    seconds: float
    relay_tracebacks: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def require_suite() -> Path:
    if not SUITE_PATH.is_file():
        raise SuiteMissingError(
            f"{SUITE_PATH} is missing: run scripts/fetch_minio_suite.sh "
            "(./scripts/test does it first)"
        )
    return SUITE_PATH


def fetch_suite() -> Path:
    subprocess.run([str(FETCH_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
    return require_suite()


def suite_test_names(suite_path: Path) -> list[str]:
    """Every top-level ``test_*`` function of tests.py, in file order: read from its syntax
    tree, so a test main() does not call is found too."""
    tree = ast.parse(suite_path.read_text(encoding="utf-8"), filename=str(suite_path))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


def read_list(path: Path) -> dict[str, str]:
    """``name`` or ``name  # reason`` per line; blank lines and ``#`` lines are comments.
    Returns name → reason ("" when there is none), in file order."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition("#")
        name = name.strip()
        if not name.isidentifier() or name in entries:
            raise ValueError(f"{path.name}:{number}: bad or repeated test name {name!r}")
        entries[name] = reason.strip()
    return entries


def write_data_files(directory: Path) -> Path:
    """The two files mint ships in /mint/data, here random bytes of the same sizes."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, size in DATA_FILES.items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != size:
            path.write_bytes(os.urandom(size))
    return directory


class RelayUnderTest:
    """One relay process for many suite tests: plain http, a fresh data directory, the
    e2e credentials. If a test kills it, the next test gets a new one (and the dead one's
    log is kept for the report)."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._starts = 0
        self.relay: RelayProcess = self._start()

    def _start(self) -> RelayProcess:
        self._starts += 1
        directory = self._base / f"relay-{self._starts}"
        directory.mkdir(parents=True)
        return start_relay(directory)

    def ensure_running(self) -> RelayProcess:
        if self.relay.process.poll() is not None:
            self.relay = self._start()
        return self.relay

    def stop(self) -> int:
        return stop_relay(self.relay.process)


@contextmanager
def open_relay(base: Path) -> Iterator[RelayUnderTest]:
    holder = RelayUnderTest(base)
    try:
        yield holder
    finally:
        holder.stop()


def run_suite_test(
    name: str,
    holder: RelayUnderTest,
    data_dir: Path,
    workdir: Path,
    timeout_seconds: float = TEST_TIMEOUT_SECONDS,
) -> Outcome:
    """Run one test function of the suite in a child process against ``holder``'s relay."""
    relay = holder.ensure_running()
    workdir.mkdir(parents=True, exist_ok=True)
    log_offset = relay.log_path.stat().st_size
    env = dict(relay.client_env)
    env.update(
        SERVER_ENDPOINT=f"{relay.host}:{relay.port}",
        ACCESS_KEY=ACCESS_KEY,
        SECRET_KEY=SECRET_KEY,
        ENABLE_HTTPS="0",
        DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    started = time.monotonic()
    try:
        completed = subprocess.run(
            [sys.executable, str(CHILD), str(require_suite()), name],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
        )
    except subprocess.TimeoutExpired as timeout:
        seconds = time.monotonic() - started
        output = _text(timeout.stdout) + _text(timeout.stderr)
        return Outcome(
            name,
            "TIMEOUT",
            f"no result within {timeout_seconds:.0f} s",
            output[-3000:],
            seconds,
            _new_tracebacks(relay, log_offset),
        )
    seconds = time.monotonic() - started
    tracebacks = _new_tracebacks(relay, log_offset)
    if relay.process.poll() is not None:
        tracebacks += f"\nrelay exited with {relay.process.returncode} during this test"
    record = _result_record(completed.stdout)
    if record is None:
        detail = (completed.stdout + completed.stderr)[-3000:]
        last = detail.strip().splitlines()[-1:] or [f"exit code {completed.returncode}"]
        return Outcome(name, "CRASH", last[0], detail, seconds, tracebacks)
    status = str(record.get("status", "FAIL"))
    message = str(record.get("message") or record.get("alert") or "")
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    detail = str(record.get("error") or "") + completed.stderr[-2000:]
    return Outcome(name, status, first_line, detail, seconds, tracebacks)


def _text(output: str | bytes | None) -> str:
    if output is None:
        return ""
    return output.decode(errors="replace") if isinstance(output, bytes) else output


def _result_record(stdout: str) -> dict[str, object] | None:
    """The JSON line the suite's _call_test prints (the last one that parses)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "status" in record:
                return record
    return None


def _new_tracebacks(relay: RelayProcess, offset: int) -> str:
    """relay's log since ``offset`` if it holds a traceback (an InternalError), else ""."""
    with open(relay.log_path, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return text[-4000:] if "Traceback" in text else ""
