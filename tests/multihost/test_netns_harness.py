"""The namespace harness itself: hosts reach each other, a cut separates exactly two of them
until it is restored, and nothing of a run is left behind, even after a failure."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
from netns import (
    NAME_STEM,
    POSTGRES_PORT,
    SUBNET_PREFIX,
    Host,
    leftover_namespaces,
    namespaces_or_skip,
    open_network,
    reap_orphaned_namespaces,
    start_postgres_in,
    wait_until,
)

PORT = 8000


@pytest.fixture(autouse=True)
def _namespaces() -> None:
    namespaces_or_skip()


def connects(address: str, *, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, PORT), timeout=timeout):
            return True
    except OSError:
        return False


def listener(host: Host) -> subprocess.Popen[bytes]:
    server = host.popen(
        [sys.executable, "-m", "http.server", "-b", host.address, str(PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: host.call(connects, host.address), timeout=30, what="the listener")
    return server


def test_a_cut_separates_exactly_two_hosts_until_restored() -> None:
    with open_network() as network:
        tag = network.tag
        a, b, c = (network.add_host(role) for role in ("a", "b", "c"))
        listener(b)
        assert a.call(connects, b.address)
        assert c.call(connects, b.address)
        # Nothing of the subnet is in this machine's own namespace.
        own = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True, check=True)
        assert SUBNET_PREFIX not in own.stdout

        network.cut(a, b)
        assert not a.call(connects, b.address)
        assert c.call(connects, b.address)
        network.restore(a, b)
        assert a.call(connects, b.address)

        network.cut(a, b, how="reject")
        assert not a.call(connects, b.address)
        network.restore(a, b)
        assert a.call(connects, b.address)

        b.unplug()
        assert not c.call(connects, b.address)
        b.plug()
        wait_until(lambda: c.call(connects, b.address), timeout=10, what="the link back up")
    assert leftover_namespaces(tag) == []


def test_teardown_kills_processes_and_deletes_namespaces_after_a_failure() -> None:
    started: dict[str, object] = {}

    def failing_test() -> None:
        with open_network() as network:
            started["tag"] = network.tag
            started["server"] = listener(network.add_host("b"))
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_test()
    server = started["server"]
    assert isinstance(server, subprocess.Popen)
    assert server.poll() is not None
    assert leftover_namespaces(str(started["tag"])) == []


def test_namespaces_of_a_run_killed_before_teardown_are_reaped() -> None:
    gone = subprocess.Popen(["true"])  # a pid that no longer runs
    gone.wait()
    orphan = f"{NAME_STEM}-{gone.pid}x0000-hub"
    subprocess.run(["ip", "netns", "add", orphan], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", orphan, "sleep", "600"])
    try:
        wait_until(
            lambda: (
                subprocess.run(
                    ["ip", "netns", "pids", orphan], capture_output=True, text=True, check=True
                ).stdout.strip()
                != ""
            ),
            timeout=10,
            what="the sleeper in the orphaned namespace",
        )
        assert orphan in reap_orphaned_namespaces()
        assert sleeper.wait(10) == -signal.SIGKILL
        assert leftover_namespaces(orphan) == []
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["ip", "netns", "del", orphan], capture_output=True, check=False)


@pytest.mark.slow
def test_postgres_in_a_namespace_is_reached_across_the_bridge_and_cut() -> None:
    with open_network() as network:
        tag = network.tag
        database = network.add_host("db")
        relay = network.add_host("relay")
        server = start_postgres_in(database)

        def ready() -> bool:
            answer = relay.run(["pg_isready", "-h", database.address, "-t", "2"], check=False)
            return answer.returncode == 0

        assert f"@{database.address}:{POSTGRES_PORT}/" in server.url
        assert ready()
        network.cut(relay, database)
        assert not ready()
        network.restore(relay, database)
        assert ready()
        directory = server.directory
    assert not server.running()
    assert not directory.exists()
    assert leftover_namespaces(tag) == []
