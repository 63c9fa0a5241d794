"""A network namespace of a test's own, where made-up host names resolve to loopback.

Virtual-hosted clients (DuckDB, the AWS SDK for JavaScript) address ``BUCKET.<domain>``,
a name the machine's resolver does not know (``*.localhost`` does not resolve here
either), and the machine's /etc/hosts is not the tests' to edit. ``ip netns exec NS``
bind-mounts ``/etc/netns/NS/hosts`` over /etc/hosts for what it runs, so relay and its
clients run inside a namespace whose hosts file names every bucket a test uses, on the
namespace's own loopback: nothing outside can reach them, nor they anything outside.
Making one needs root (or CAP_SYS_ADMIN) and ``ip`` (iproute2); without them the test
skips, naming which.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

NETNS_ETC = Path("/etc/netns")
_numbers = itertools.count()


@dataclass(frozen=True)
class Namespace:
    name: str

    @property
    def prefix(self) -> list[str]:
        """Put before a command to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


@contextmanager
def network_namespace(host_names: Sequence[str]) -> Iterator[Namespace]:
    """A fresh namespace, its loopback up, where each of ``host_names`` is 127.0.0.1."""
    if shutil.which("ip") is None:
        pytest.skip("UNAVAILABLE: `ip` (iproute2) is not installed: no network namespace")
    if os.geteuid() != 0:
        pytest.skip("UNAVAILABLE: making a network namespace needs root (ip netns add)")
    namespace = Namespace(f"relay-e2e-{os.getpid()}-{next(_numbers)}")
    made = _ip("netns", "add", namespace.name)
    if made.returncode != 0:
        pytest.skip(f"UNAVAILABLE: `ip netns add` failed: {made.stderr.strip()}")
    hosts_dir = NETNS_ETC / namespace.name
    try:
        hosts_dir.mkdir(parents=True, exist_ok=True)
        (hosts_dir / "hosts").write_text(
            "127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {name}\n" for name in host_names)
        )
        up = _ip("netns", "exec", namespace.name, "ip", "link", "set", "lo", "up")
        assert up.returncode == 0, f"cannot bring the namespace's loopback up: {up.stderr}"
        yield namespace
    finally:
        _ip("netns", "delete", namespace.name)
        shutil.rmtree(hosts_dir, ignore_errors=True)
