"""The S3 servers the benchmarks compare, started on loopback and stopped after.

A ``Peer`` says how to start one kind of server (relay, moto's standalone server, s3rver)
and which credentials it accepts; ``Server`` is one running instance: a subprocess whose
log goes to a file (so a full pipe never stalls it), ready once its banner is logged or its
port accepts, stopped with SIGTERM, SIGTERM again, then SIGKILL.

What a server costs is read from the kernel's own accounting of the server process, never
estimated from the client side: CPU seconds are utime + stime of the process and every
live descendant (all threads) plus the reaped children's, from /proc/<pid>/stat; peak RSS
is VmHWM, reset before each step through /proc/<pid>/clear_refs (where that is refused, it
is the peak since start); ``RssSampler`` records VmRSS over time in a thread.

A peer that cannot be had here (moto not importable, node absent, s3rver not installable)
is reported by ``unavailable_reason`` so the caller prints why it is skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB
CLOCK_TICKS_PER_SECOND: Final = os.sysconf("SC_CLK_TCK")
# A cold Python server imports its framework in ~1-3 s; 60 s only matters on a sick host.
SERVER_START_TIMEOUT_SECONDS: Final = 60.0
# No server has requests in flight when it is stopped, so a clean stop takes well under a
# second; waiting longer per signal would only pad the run.
SERVER_STOP_TIMEOUT_SECONDS: Final = 3.0
REGION: Final = "us-east-1"
BIN: Final = Path(sys.executable).parent
BENCH_DIR: Final = Path(__file__).resolve().parent
# s3rver is installed from npm into this bench-local, gitignored folder.
NODE_DIR: Final = BENCH_DIR / ".node"
S3RVER_SCRIPT: Final = NODE_DIR / "node_modules" / "s3rver" / "bin" / "s3rver.js"
S3RVER_PACKAGE: Final = "s3rver@3"
NPM_INSTALL_TIMEOUT_SECONDS: Final = 300.0


# ----------------------------------------------------------------------------- accounting


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stat_fields(pid: int) -> list[str]:
    # Fields after the parenthesised command name: utime, stime, cutime, cstime are fields
    # 14-17 of proc(5), so indices 11-14 here.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in children:
                found.append(int(child))
                pending.append(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, its live descendants and its reaped children."""
    fields = _stat_fields(pid)
    ticks = sum(int(value) for value in fields[11:15])
    for child in _descendants(pid):
        try:
            ticks += sum(int(value) for value in _stat_fields(child)[11:13])
        except OSError:
            continue  # exited between the listing and the read; its parent reaps it
    return ticks / CLOCK_TICKS_PER_SECOND


def status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} missing from /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, own processes); False if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """VmRSS of one process every ``interval_seconds``, in a daemon thread, while entered."""

    def __init__(self, pid: int, interval_seconds: float = 0.1) -> None:
        self.pid = pid
        self.interval_seconds = interval_seconds
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        while True:
            try:
                rss = status_kib(self.pid, "VmRSS") / KIB
            except (OSError, RuntimeError):
                return
            self.samples.append((time.perf_counter() - start, rss))
            if self._stop.wait(self.interval_seconds):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------------------- the peers


@dataclass(frozen=True, slots=True)
class Peer:
    """How to start one kind of S3 server on 127.0.0.1:port with its data in data_dir."""

    name: str
    language: str
    access_key: str
    secret_key: str
    command: Callable[[int, Path], list[str]]
    # Logged once the server accepts requests; None: wait for the port to accept.
    ready_banner: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # Environment variables to drop (the server's own configuration from the caller's shell).
    env_prefixes_dropped: tuple[str, ...] = ("RELAY_", "AWS_")

    def environment(self, workdir: Path) -> dict[str, str]:
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(self.env_prefixes_dropped)
        }
        environ["TMPDIR"] = str(workdir)  # moto spools large objects to temporary files
        return environ | dict(self.extra_env)


def _relay_command(port: int, data_dir: Path, workers: int = 1) -> list[str]:
    script = BIN / "relay"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "relay"]
    listen = f"127.0.0.1:{port}"
    return [*base, "serve", "--data", str(data_dir), "--listen", listen, "--workers", str(workers)]


def _moto_command(port: int, data_dir: Path) -> list[str]:
    script = BIN / "moto_server"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    return [*base, "-H", "127.0.0.1", "-p", str(port)]


def _s3rver_command(port: int, data_dir: Path) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node") or "node"
    script = str(S3RVER_SCRIPT)
    return [node, script, "-d", str(data_dir), "-a", "127.0.0.1", "-p", str(port), "--silent"]


RELAY_KEYS: Final = {"RELAY_ACCESS_KEY_ID": "relay-bench", "RELAY_SECRET_ACCESS_KEY": "relay-bench"}

# glibc's allocator: by default a freed block above the (dynamic) mmap threshold goes back
# to the kernel, so every fresh 1 MiB body buffer costs an mmap, 256 page faults and a
# munmap. Raising the thresholds keeps such buffers on the heap. Set through the
# environment only, to measure the lever without changing relay.
MALLOC_TUNING: Final = {
    "MALLOC_MMAP_THRESHOLD_": str(64 * MIB),
    "MALLOC_TRIM_THRESHOLD_": str(256 * MIB),
}

PEERS: Final[dict[str, Peer]] = {
    "relay": Peer(
        name="relay",
        language="Python (trio)",
        access_key=RELAY_KEYS["RELAY_ACCESS_KEY_ID"],
        secret_key=RELAY_KEYS["RELAY_SECRET_ACCESS_KEY"],
        command=_relay_command,
        ready_banner="serving S3 at",
        extra_env=RELAY_KEYS,
    ),
    "relay-malloc": Peer(
        name="relay-malloc",
        language="Python (trio), glibc mmap/trim thresholds raised",
        access_key=RELAY_KEYS["RELAY_ACCESS_KEY_ID"],
        secret_key=RELAY_KEYS["RELAY_SECRET_ACCESS_KEY"],
        command=_relay_command,
        ready_banner="serving S3 at",
        extra_env=RELAY_KEYS | MALLOC_TUNING,
    ),
    # The workers dimension: a supervisor and two worker processes on one port. Server CPU
    # and peak RSS are summed over all of them (``cpu_seconds``, ``Server.peak_rss_mib``).
    "relay-2w": Peer(
        name="relay-2w",
        language="Python (trio), 2 worker processes",
        access_key=RELAY_KEYS["RELAY_ACCESS_KEY_ID"],
        secret_key=RELAY_KEYS["RELAY_SECRET_ACCESS_KEY"],
        command=partial(_relay_command, workers=2),
        ready_banner="serving S3 at",
        extra_env=RELAY_KEYS,
    ),
    "moto": Peer(
        name="moto",
        language="Python (werkzeug)",
        access_key="test",
        secret_key="test",
        command=_moto_command,
    ),
    "s3rver": Peer(
        name="s3rver",
        language="Node.js",
        # s3rver's built-in account.
        access_key="S3RVER",
        secret_key="S3RVER",
        command=_s3rver_command,
        # s3rver's continuation tokens use a cipher OpenSSL 3 keeps in its legacy provider;
        # without it every listing past one page answers 500 on Node >= 17.
        extra_env={"NODE_OPTIONS": "--openssl-legacy-provider"},
    ),
}


def distribution_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "absent"


def moto_unavailable_reason() -> str | None:
    """Why moto's server cannot run here, or None when it can."""
    probe = subprocess.run(
        [sys.executable, "-c", "import moto.server, flask, werkzeug; print(moto.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"moto[server] is not importable ({last}); pip install 'moto[server]'"
    return None


def s3rver_unavailable_reason(install: bool = True) -> str | None:
    """Why s3rver cannot run here, or None; installs it from npm into bench/.node first."""
    if shutil.which("node") is None:
        return "node is not on PATH (s3rver is a Node.js server)"
    if S3RVER_SCRIPT.exists():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not on PATH, so s3rver cannot be installed"
    if not install:
        return f"s3rver is not installed in {NODE_DIR}"
    print(f"s3rver: installing {S3RVER_PACKAGE} from npm into {NODE_DIR}", flush=True)
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        installed = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR), S3RVER_PACKAGE],
            capture_output=True,
            text=True,
            check=False,
            timeout=NPM_INSTALL_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return f"npm install {S3RVER_PACKAGE} took over {NPM_INSTALL_TIMEOUT_SECONDS:.0f} s"
    if installed.returncode != 0 or not S3RVER_SCRIPT.exists():
        last = (installed.stderr.strip().splitlines() or ["?"])[-1]
        return f"npm install {S3RVER_PACKAGE} failed: {last}"
    return None


def unavailable_reason(name: str) -> str | None:
    if name not in PEERS:
        return f"unknown server {name!r} (known: {', '.join(PEERS)})"
    if name == "moto":
        return moto_unavailable_reason()
    if name == "s3rver":
        return s3rver_unavailable_reason()
    return None


def versions() -> dict[str, str]:
    found = {"relay": distribution_version("relay"), "moto": distribution_version("moto")}
    package = NODE_DIR / "node_modules" / "s3rver" / "package.json"
    if package.exists():
        import json

        found["s3rver"] = str(json.loads(package.read_text()).get("version"))
    node = shutil.which("node")
    if node:
        found["node"] = subprocess.run(
            [node, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return found


# ----------------------------------------------------------------------------- one server


class Server:
    """One running peer on 127.0.0.1 with its log in a file."""

    def __init__(self, peer: Peer, workdir: Path) -> None:
        self.peer = peer
        self.kind = peer.name
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{peer.name}-{self.port}.log"
        self.data_dir = workdir / f"{peer.name}-{self.port}-data"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                peer.command(self.port, self.data_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=peer.environment(workdir),
                cwd=workdir,
            )
        self.pid = self.process.pid
        self.stop_signals = 0
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited at start:\n{self.log_tail()}")
            if self.peer.ready_banner is not None:
                if self.peer.ready_banner in self.log_path.read_text(errors="replace"):
                    return
            else:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} not ready in {SERVER_START_TIMEOUT_SECONDS} s")

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def _processes(self) -> list[int]:
        """The server and its live descendants (relay's workers)."""
        return [self.pid, *_descendants(self.pid)]

    def peak_rss_mib(self) -> float:
        """The sum of each process's peak (an upper bound when there are several)."""
        return sum(status_kib(pid, "VmHWM") for pid in self._processes()) / KIB

    def rss_mib(self) -> float:
        return sum(status_kib(pid, "VmRSS") for pid in self._processes()) / KIB

    def reset_peak_rss(self) -> bool:
        return all([reset_peak_rss(pid) for pid in self._processes()])

    def stop(self) -> None:
        """SIGTERM; if the server is still up after a grace, SIGTERM again, then SIGKILL.

        relay documents a second signal as "stop now"; ``stop_signals`` records how many
        it took, because a server that ignores the first one is worth knowing about.
        """
        for _ in range(2):
            if self.process.poll() is not None:
                break
            self.process.send_signal(signal.SIGTERM)
            self.stop_signals += 1
            try:
                self.process.wait(SERVER_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                continue
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            self.stop_signals += 1
        shutil.rmtree(self.data_dir, ignore_errors=True)


@contextmanager
def running(peer: Peer, workdir: Path, notes: list[str]) -> Iterator[Server]:
    """A fresh server; how it stopped is added to ``notes`` if unclean."""
    server = Server(peer, workdir)
    try:
        yield server
    finally:
        server.stop()
        if server.stop_signals > 1:
            notes.append(
                f"{peer.name} did not exit within {SERVER_STOP_TIMEOUT_SECONDS:.0f} s of"
                f" SIGTERM; stopped after {server.stop_signals} signals"
            )


# ----------------------------------------------------------------------------- the data


def random_bytes_source(seed: int) -> Callable[[int], bytes]:
    """A fast source of incompressible bytes (numpy's PCG64 if present: ~3x os.urandom)."""
    try:
        import numpy
    except ImportError:
        import random

        return random.Random(seed).randbytes
    generator = numpy.random.default_rng(seed)
    return generator.bytes


def make_big_file(
    path: Path, size: int, seed: int, progress: Callable[[int], object] | None = None
) -> None:
    """A random file of ``size`` bytes (written to ``path.tmp`` then renamed)."""
    source = random_bytes_source(seed)
    piece = 16 * MIB
    partial = path.with_suffix(path.suffix + ".tmp")
    with partial.open("wb") as out:
        left = size
        while left:
            data = source(min(piece, left))
            out.write(data)
            left -= len(data)
            if progress is not None:
                progress(len(data))
    partial.rename(path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(16 * MIB):
            digest.update(chunk)
    return digest.hexdigest()
