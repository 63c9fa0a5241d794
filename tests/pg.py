"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temporary cluster.

``start_postgres()`` runs ``initdb`` and ``pg_ctl start`` from the newest
``/usr/lib/postgresql/*/bin`` into a fresh directory, listening on 127.0.0.1 on a free
port (no Unix socket), with a superuser ``relay`` whose password the URLs carry: so the
tests see password authentication, and can check that the password never leaks.
``stop()`` / ``start()`` / ``restart()`` are for fault tests; ``close()`` removes it all.
``new_database()`` gives each test a fresh, empty database on the one server.

initdb and postgres refuse to run as root: as root they run as the ``postgres`` user
(``runuser``), with the directory handed to it. ``fsync=off``: the tests kill relay, never
the machine, so the page cache keeps what PostgreSQL wrote and the tests stay fast.

Used by ``tests/registry/conftest.py`` (a session-scoped server) and by tests that need a
server of their own (the e2e test stops and starts it).
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

POSTGRES_ROOT = Path("/usr/lib/postgresql")
# initdb writes a cluster (a few seconds on a loaded machine); a start replays WAL.
START_TIMEOUT_SECONDS = 60
USER = "relay"

_database_numbers = itertools.count()


def newest_bin_dir() -> Path | None:
    """The ``bin`` directory of the newest PostgreSQL installed, if any."""
    found = []
    for candidate in POSTGRES_ROOT.glob("*/bin"):
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            try:
                found.append((int(candidate.parent.name), candidate))
            except ValueError:
                continue
    return max(found)[1] if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    base: Path
    port: int
    password: str
    as_user: list[str] = field(default_factory=list)  # runuser prefix when root
    host: str = "127.0.0.1"  # the address it listens on (and URLs name)
    # Prepended to pg_ctl: ["ip", "netns", "exec", NAME] runs the server in a namespace.
    prefix: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@{self.host}:{self.port}/{database}"

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            [*self.prefix, *self.as_user, *command],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise RuntimeError(
                f"{' '.join(command[:2])} failed ({result.returncode}):"
                f" {result.stdout}{result.stderr}\n{log[-4000:]}"
            )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses={self.host} -c unix_socket_directories=''"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-o",
            options,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients, clean shutdown; ``immediate``:
        as a crash would)."""
        self._run(str(self.bin_dir / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.data_dir))

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"relay_test_{os.getpid()}_{next(_database_numbers)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def start_postgres(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    clients: Sequence[str] = (),
    prefix: Sequence[str] = (),
) -> PostgresServer:
    """A running throwaway server (see the module docstring); ``close()`` it.

    ``host``: the address to listen on; ``clients``: networks (``10.9.0.0/24``) allowed to
    connect with the password besides loopback; ``prefix``: a command the server runs
    under (``ip netns exec NAME``). For tests with hosts of their own (network namespaces)."""
    bin_dir = newest_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError(f"no PostgreSQL under {POSTGRES_ROOT}/*/bin")
    # Not under pytest's tmp_path: that is mode 0700 under root's, which the postgres
    # user cannot enter.
    base = Path(tempfile.mkdtemp(prefix="relay-pg-"))
    base.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    password = secrets.token_hex(12)
    server = PostgresServer(
        bin_dir, base, port or free_port(), password, as_user, host, list(prefix)
    )
    password_file = base / "password"
    password_file.write_text(password + "\n")
    if as_user:
        shutil.chown(password_file, "postgres", "postgres")
    try:
        server._run(
            str(bin_dir / "initdb"),
            "-D",
            str(server.data_dir),
            "-U",
            USER,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        password_file.unlink()
        with (server.data_dir / "pg_hba.conf").open("a") as hba:
            for network in clients:
                hba.write(f"host all all {network} scram-sha-256\n")
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def postgres_or_fail() -> PostgresServer:
    """``start_postgres()``; a skip naming what is missing only when the binaries are
    absent (``scripts/test`` installs them), a failure when they are there and do not start."""
    if newest_bin_dir() is None:
        pytest.skip(
            f"PostgreSQL is not installed (no {POSTGRES_ROOT}/*/bin/initdb):"
            " apt-get install postgresql, or run scripts/test, which does"
        )
    try:
        return start_postgres()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"PostgreSQL is installed but did not start: {exc}")
