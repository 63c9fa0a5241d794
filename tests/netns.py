"""Hosts of their own on one machine: network namespaces joined by a bridge, for tests.

A test that needs several *hosts* (relays, PostgreSQL, the upstream S3 store, clients)
opens a ``Network``: a hub namespace holding a bridge, and for each host a namespace of its
own, joined to the bridge by a veth pair, with an address ``10.77.0.N/24`` and its loopback
up. Nothing is added to the machine's own namespace: the subnet lives only inside this
run's namespaces, so two runs (or two engineers) cannot collide however they number their
hosts, and namespace names carry the process id and a random tag.

Processes are started inside a host with ``ip netns exec NS ...`` (which execs the command,
so the ``Popen`` is the process itself and ``kill -9`` reaches it). The test process itself
talks to a host from a thread that has joined the host's namespace (``Host.call``: Linux
keeps the network namespace per thread, and a socket stays in the namespace it was made
in), so a client in the ``clients`` namespace is a real remote client of a relay.

Faults, chosen because this machine has neither nftables nor iptables:

- ``Network.cut(a, b)`` routes each host's address to a blackhole in the other's namespace:
  packets between exactly those two hosts are dropped in both directions, silently, as by
  a failed link or a partition; both keep talking to everyone else. Established
  connections stall (their segments vanish) and new ones time out: a peer learns of the
  cut only through its own timeouts, which is what the tests mean to exercise.
  ``how="reject"`` installs ``unreachable`` routes instead: new connections fail at once
  with EHOSTUNREACH (a firewall that answers), established ones still stall.
- ``Network.restore(a, b)`` removes those routes; nothing is restarted.
- ``Host.unplug()`` / ``plug()`` set the host's link on the bridge down / up: the host is
  cut from everyone.
- ``kill -9`` of a process is the test's own ``process.kill()``.

Everything is torn down when the ``with`` block ends, also after a failure: every process
started through the network is killed (a namespace outlives ``ip netns del`` while a
process is in it), then every namespace is deleted, which deletes its veth ends and the
bridge. ``leftover_namespaces()`` lets a test assert that nothing of its run remains. A run
killed before its teardown leaves its namespaces; the next ``open_network`` deletes those
whose owning process (the pid in their name) is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from moto_upstream import MotoServer

SUBNET_PREFIX = "10.77.0."
SUBNET_BITS = 24
HUB_ADDRESS = SUBNET_PREFIX + "1"
# Namespace names start with this; a run's names also carry its pid and a random tag.
NAME_STEM = "relaytest"
# A process asked to stop gets this long before it is killed (teardown must not hang).
STOP_TIMEOUT_SECONDS = 10.0
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = Path("/run/netns")

T = TypeVar("T")


class NetnsUnavailable(RuntimeError):
    pass


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def namespaces_or_skip() -> None:
    """Skip loudly unless this process can create network namespaces and veth pairs."""
    if shutil.which("ip") is None:
        pytest.skip("NO NETWORK NAMESPACES: the `ip` command (iproute2) is not installed")
    probe = f"{NAME_STEM}-probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except RuntimeError as exc:
        pytest.skip(f"NO NETWORK NAMESPACES (needs root or CAP_SYS_ADMIN): {exc}")
    try:
        _ip("-n", probe, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
    except RuntimeError as exc:
        pytest.skip(f"NO VETH PAIRS in network namespaces: {exc}")
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)


def leftover_namespaces(tag: str) -> list[str]:
    """The namespaces whose name contains ``tag`` that still exist."""
    listing = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[0] for line in listing.splitlines() if line and tag in line]


@dataclass
class Host:
    """One namespace on the bridge: a name for the test, an address of its own."""

    network: Network
    role: str
    namespace: str
    address: str
    hub_link: str  # the veth end on the bridge, in the hub namespace

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]

    def popen(self, argv: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` in this host; the network kills it at teardown if it still runs."""
        process = subprocess.Popen(self.command(argv), **options)
        self.network.processes.append(process)
        return process

    def run(
        self, argv: Sequence[str], *, timeout: float = 60.0, check: bool = True, **options: Any
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            **options,
        )

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a thread inside this host's namespace (its sockets are
        this host's); returns its result or raises its exception."""
        return in_namespace(self.namespace, function, *args)

    def unplug(self) -> None:
        _ip("-n", self.network.hub, "link", "set", self.hub_link, "down")

    def plug(self) -> None:
        _ip("-n", self.network.hub, "link", "set", self.hub_link, "up")


def join_namespace(namespace: str) -> None:
    """Move the calling thread (only it) into ``namespace``'s network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    descriptor = os.open(_NETNS_DIR / namespace, os.O_RDONLY)
    try:
        if libc.setns(descriptor, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {namespace}: {os.strerror(error)}")
    finally:
        os.close(descriptor)


def in_namespace(namespace: str, function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` on a fresh thread that joined ``namespace`` first. The
    thread ends with the call, so no pooled thread is ever left in a namespace."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            join_namespace(namespace)
            outcome["value"] = function(*args)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=work, name=f"in-{namespace}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@dataclass
class Network:
    """This run's hub and hosts; open one with ``open_network()``."""

    tag: str
    hub: str
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)  # servers not Popen'd here
    _cuts: set[tuple[str, str]] = field(default_factory=set)

    def add_host(self, role: str) -> Host:
        """A new namespace ``role`` with the next address on the bridge."""
        if role in self.hosts or not role.isidentifier() or len(self.hosts) > 200:
            raise ValueError(f"bad or repeated host role {role!r}")
        number = len(self.hosts) + 2  # .1 is the hub's bridge
        namespace = f"{NAME_STEM}-{self.tag}-{role}"
        host = Host(self, role, namespace, f"{SUBNET_PREFIX}{number}", f"v{number}")
        _ip("netns", "add", namespace)
        self.hosts[role] = host
        _ip("-n", namespace, "link", "set", "lo", "up")
        # Both ends are created where they belong, so no name ever exists in the machine's
        # own namespace (where another test run could hold it).
        _ip(
            "link", "add", "eth0", "netns", namespace, "type", "veth",
            "peer", "name", host.hub_link, "netns", self.hub,
        )  # fmt: skip
        _ip("-n", self.hub, "link", "set", host.hub_link, "master", "br0")
        _ip("-n", self.hub, "link", "set", host.hub_link, "up")
        _ip("-n", namespace, "addr", "add", f"{host.address}/{SUBNET_BITS}", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        return host

    def cut(self, a: Host, b: Host, *, how: str = "drop") -> None:
        """Drop every packet between ``a`` and ``b`` (both directions); see the module."""
        route_type = {"drop": "blackhole", "reject": "unreachable"}[how]
        for here, there in ((a, b), (b, a)):
            _ip("-n", here.namespace, "route", "add", route_type, f"{there.address}/32")
            self._cuts.add((here.namespace, there.address))

    def restore(self, a: Host, b: Host) -> None:
        for here, there in ((a, b), (b, a)):
            if (here.namespace, there.address) in self._cuts:
                _ip("-n", here.namespace, "route", "del", f"{there.address}/32")
                self._cuts.discard((here.namespace, there.address))

    def close(self) -> None:
        """Kill every process started here, then delete every namespace (and so every
        link). Runs to the end whatever fails; raises the first failure afterwards."""
        failures: list[BaseException] = []
        # Newest first: relays go before the PostgreSQL they are connected to, so its
        # graceful stop does not wait for their sessions.
        for process in reversed(self.processes):
            try:
                stop_process(process)
            except BaseException as exc:
                failures.append(exc)
        for close in reversed(self.closers):
            try:
                close()
            except BaseException as exc:
                failures.append(exc)
        for namespace in [host.namespace for host in self.hosts.values()] + [self.hub]:
            result = subprocess.run(
                ["ip", "netns", "del", namespace], capture_output=True, text=True, check=False
            )
            if result.returncode != 0 and namespace in leftover_namespaces(namespace):
                failures.append(RuntimeError(f"ip netns del {namespace}: {result.stderr}"))
        for directory in self.directories:
            shutil.rmtree(directory, ignore_errors=True)
        if failures:
            raise failures[0]


@contextmanager
def open_network() -> Iterator[Network]:
    """A hub namespace with a bridge at ``10.77.0.1/24``; hosts come from ``add_host``."""
    reap_orphaned_namespaces()
    tag = f"{os.getpid()}x{secrets.token_hex(2)}"
    network = Network(tag=tag, hub=f"{NAME_STEM}-{tag}-hub")
    try:
        _ip("netns", "add", network.hub)
        _ip("-n", network.hub, "link", "set", "lo", "up")
        _ip("-n", network.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", network.hub, "addr", "add", f"{HUB_ADDRESS}/{SUBNET_BITS}", "dev", "br0")
        _ip("-n", network.hub, "link", "set", "br0", "up")
        yield network
    finally:
        network.close()


def reap_orphaned_namespaces() -> list[str]:
    """Delete the namespaces of test runs whose process is gone (killed before its
    teardown ran), and kill what still runs in them; the names deleted."""
    reaped = []
    for namespace in leftover_namespaces(f"{NAME_STEM}-"):
        owner = namespace.removeprefix(f"{NAME_STEM}-").split("x", 1)[0]
        if (
            not namespace.startswith(f"{NAME_STEM}-")
            or not owner.isdigit()
            or Path(f"/proc/{owner}").exists()
        ):
            continue
        pids = subprocess.run(
            ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        reaped.append(namespace)
    return reaped


def stop_process(process: subprocess.Popen[bytes], *, graceful: bool = True) -> int:
    """SIGTERM (when ``graceful``), SIGKILL if that takes too long; the exit code."""
    if process.poll() is None:
        if graceful:
            process.terminate()
            try:
                return process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        process.kill()
        process.wait()
    return process.returncode


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def shared_temporary_directory(owner: str | None = None) -> Path:
    """A directory outside pytest's private tmp tree (which only root may enter), for a
    server that runs as another user (PostgreSQL refuses to run as root)."""
    path = Path(tempfile.mkdtemp(prefix="relaytest-"))
    path.chmod(0o755)
    if owner is not None:
        shutil.chown(path, owner, owner)
    return path


# -- services in hosts ---------------------------------------------------------------------

RELAY_PORT = 9000
MOTO_PORT = 5000
POSTGRES_PORT = 5432
ACCESS_KEY = "test"
SECRET_KEY = "test"
REGION = "us-east-1"
# A cold start imports trio, h11 and the codecs: seconds on a loaded machine.
STARTUP_TIMEOUT_SECONDS = 60.0
_ENDPOINT_LINE = re.compile(r"serving S3 at (http://\S+)")


@dataclass(frozen=True)
class RelayHost:
    host: Host
    process: subprocess.Popen[bytes]
    endpoint: str
    config_path: Path
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def relay_config(*, store: str = "", registry_url: str | None = None) -> str:
    """A config file's text: test/test credentials, plus ``store`` (TOML tables) and, when
    given, ``registry.url``."""
    text = f'region = "{REGION}"\n'
    if registry_url is not None:
        text += f'[registry]\nurl = "{registry_url}"\n'
    text += store
    text += f'[[credentials]]\naccess_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n'
    return text


def s3_store_table(moto: MotoServer, bucket: str) -> str:
    return (
        '[store]\nkind = "s3"\n[store.s3]\n'
        f'endpoint = "{moto.endpoint}"\nbucket = "{bucket}"\nregion = "{REGION}"\n'
        f'access_key_id = "{moto.access_key}"\nsecret_access_key = "{moto.secret_key}"\n'
    )


def start_relay_in(
    host: Host, base: Path, config_text: str, *, args: Sequence[str] = ()
) -> RelayHost:
    """``relay serve`` in ``host`` on its own address, port 9000, data under ``base``;
    ``args`` go to ``relay serve`` (``--workers 2``...)."""
    base.mkdir(parents=True, exist_ok=True)
    config_path = base / "relay.toml"
    config_path.write_text(config_text)
    data_dir = base / "data"
    log_path = base / "relay.log"
    env = {name: value for name, value in os.environ.items() if not name.startswith("RELAY_")}
    env.update(PYTHONUNBUFFERED="1")
    argv = [
        sys.executable, "-m", "relay", "serve", "--config", str(config_path),
        "--data", str(data_dir), "--listen", f"{host.address}:{RELAY_PORT}", *args,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = host.popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base)

    def announced() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"relay in {host.role} exited:\n{log_path.read_text()}")
        return _ENDPOINT_LINE.search(log_path.read_text(errors="replace")) is not None

    wait_until(announced, timeout=STARTUP_TIMEOUT_SECONDS, what=f"relay in {host.role}")
    match = _ENDPOINT_LINE.search(log_path.read_text(errors="replace"))
    assert match is not None
    return RelayHost(host, process, match.group(1), config_path, data_dir, log_path)


@dataclass(frozen=True)
class CommitLine:
    version: int
    root: str
    parent: str | None = None  # the log does not print one today


def relay_commit_log(where: Host | None, relay: RelayHost, bucket: str) -> list[CommitLine]:
    """``relay log BUCKET`` with the relay's own config (so it reads whatever registry the
    relay uses), oldest first. ``where``: the host to run it in (None: this machine's own
    namespace, enough for a registry on local disk)."""
    argv = [
        sys.executable, "-m", "relay", "log", bucket, "--limit", "1000000000",
        "--config", str(relay.config_path), "--data", str(relay.data_dir),
    ]  # fmt: skip
    env = {name: value for name, value in os.environ.items() if not name.startswith("RELAY_")}
    if where is None:
        output = subprocess.run(
            argv, capture_output=True, text=True, check=True, env=env, timeout=120
        ).stdout
    else:
        output = where.run(argv, env=env, timeout=120).stdout
    lines = []
    for line in output.splitlines():
        # "   VERSION  YYYY-MM-DD HH:MM:SS.mmm  ROOT  +PUTS -DELETES"
        fields = line.split()
        if len(fields) >= 4:
            lines.append(CommitLine(int(fields[0]), fields[3]))
    return sorted(lines, key=lambda line: line.version)


def start_moto_in(host: Host, workdir: Path) -> MotoServer:
    """moto's S3 server in ``host`` at its address, port 5000, with checked credentials."""
    from moto_upstream import STARTUP_TIMEOUT_SECONDS as MOTO_STARTUP
    from moto_upstream import MotoServer, _create_credentials, _moto_command

    command = _moto_command()
    if command is None:
        pytest.skip("NO S3 UPSTREAM: moto_server is not installed (pip install 'moto[server]')")
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "moto.log"
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(INITIAL_NO_AUTH_ACTION_COUNT="3", TMPDIR=str(workdir))
    with log_path.open("wb") as log:
        process = host.popen(
            [*command, "-H", host.address, "-p", str(MOTO_PORT)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
        )  # fmt: skip
    endpoint = f"http://{host.address}:{MOTO_PORT}"

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    wait_until(
        lambda: host.call(answers), timeout=max(MOTO_STARTUP, STARTUP_TIMEOUT_SECONDS),
        what="moto_server",
    )  # fmt: skip
    access_key, secret_key = host.call(_create_credentials, endpoint)
    return MotoServer(process, endpoint, MOTO_PORT, log_path, access_key, secret_key)


@dataclass(frozen=True)
class PostgresHost:
    host: Host
    url: str
    directory: Path
    running: Callable[[], bool]


def start_postgres_in(host: Host) -> PostgresHost:
    """A throwaway PostgreSQL in ``host``, listening on its address, admitting the subnet;
    the network stops it at teardown.

    Through ``tests/pg.py`` (the suite's PostgreSQL helper: password authentication,
    ``pg_ctl``) where that module is present; otherwise a minimal start of Debian's
    binaries here."""
    try:
        from pg import start_postgres  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _start_debian_postgres_in(host)
    server = start_postgres(
        host=host.address,
        port=POSTGRES_PORT,
        clients=[f"{SUBNET_PREFIX}0/{SUBNET_BITS}"],
        prefix=host.command([]),
    )
    host.network.closers.append(server.close)
    return PostgresHost(host, server.url(), server.base, server.running)


def _start_debian_postgres_in(host: Host) -> PostgresHost:
    """initdb and ``postgres`` run as the ``postgres`` user (initdb refuses root), from a
    directory outside pytest's tmp tree, trusting the subnet."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries:
        pytest.skip("NO POSTGRESQL: /usr/lib/postgresql/*/bin/initdb missing (apt postgresql)")
    bin_dir = binaries[-1].parent
    directory = shared_temporary_directory("postgres")
    host.network.directories.append(directory)
    data = directory / "data"
    as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
         "-A", "trust", "--no-sync", "--no-instructions"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {SUBNET_PREFIX}0/{SUBNET_BITS} trust\n")
    log_path = directory / "postgres.log"
    with log_path.open("wb") as log:
        # setpriv execs (no fork), so this Popen is the postmaster and kill -9 reaches it.
        # fsync off: these servers are never crashed, and the machine is small and shared.
        process = host.popen(
            [*as_postgres, str(bin_dir / "postgres"), "-D", str(data),
             "-c", f"listen_addresses={host.address}", "-p", str(POSTGRES_PORT),
             "-c", f"unix_socket_directories={directory}", "-c", "fsync=off"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited:\n{log_path.read_text()}")
        answer = host.run(
            [str(bin_dir / "pg_isready"), "-h", host.address, "-p", str(POSTGRES_PORT)],
            check=False,
        )
        return answer.returncode == 0

    wait_until(ready, timeout=STARTUP_TIMEOUT_SECONDS, what="postgres", interval=0.2)
    url = f"postgresql://postgres@{host.address}:{POSTGRES_PORT}/postgres"
    return PostgresHost(host, url, directory, lambda: process.poll() is None)
