"""``relay serve --workers N``: several processes on one port, one data directory.

Which worker answered a request is read from the request log (``worker=SLOT``, found by
the request id the client got). A boto3 client with one pooled connection keeps talking
to the worker that accepted that connection, so ``clients_on_workers`` pins clients to
workers by opening bursts of connections until one lands on each.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from e2e_helpers import RelayProcess, boto_client, start_relay, stop_relay

WORKERS = 3
# How long bursts of fresh connections are tried until one reaches each worker wanted
# (see ``pinned_clients``).
PIN_TIMEOUT_SECONDS = 60.0
PIN_BURST = 6
LOG_TIMEOUT_SECONDS = 15.0
EXIT_TIMEOUT_SECONDS = 30.0
MIB = 1 << 20

_PIDS_LINE = re.compile(r"relay: workers 1-\d+ \(pids ([\d, ]+)\)")


def request_worker(relay: RelayProcess, request_id: str) -> str:
    """The worker that logged ``request_id``."""
    deadline = time.monotonic() + LOG_TIMEOUT_SECONDS
    pattern = re.compile(rf" {re.escape(request_id)} .* worker=(\S+)$", re.MULTILINE)
    while time.monotonic() < deadline:
        match = pattern.search(relay.log())
        if match:
            return match.group(1)
        time.sleep(0.02)
    raise AssertionError(f"no request line for {request_id}:\n{relay.log()[-3000:]}")


def pinned_clients(relay: RelayProcess) -> list[tuple[Any, str]]:
    """``PIN_BURST`` boto3 clients, each on one keep-alive connection, and the worker each
    connection reached. The connections are made at once: one at a time, they tend to
    reach the same worker or two (which woken worker accepts first is the scheduler's
    choice, and it often chooses the same way; 60 sequential connections reached only
    two of three workers on an idle machine), while a burst spreads over the workers
    (a worker busy accepting or answering one leaves the next to another)."""
    clients = [boto_client(relay, max_pool_connections=1) for _ in range(PIN_BURST)]
    with ThreadPoolExecutor(PIN_BURST) as pool:
        answers = list(pool.map(lambda client: client.list_buckets(), clients))
    return [
        (client, request_worker(relay, answer["ResponseMetadata"]["RequestId"]))
        for client, answer in zip(clients, answers, strict=True)
    ]


def clients_on_workers(relay: RelayProcess, workers: Sequence[str]) -> list[Any]:
    """A client pinned to each of ``workers``, in that order."""
    wanted = set(workers)
    found: dict[str, Any] = {}
    deadline = time.monotonic() + PIN_TIMEOUT_SECONDS
    bursts = 0
    while wanted - set(found) and time.monotonic() < deadline:
        bursts += 1
        for client, reached in pinned_clients(relay):
            if reached in wanted and reached not in found:
                found[reached] = client
            else:
                client.close()
    missing = sorted(wanted - set(found))
    assert not missing, (
        f"no connection reached workers {missing} in {PIN_TIMEOUT_SECONDS:g} s"
        f" ({bursts} bursts of {PIN_BURST})"
    )
    return [found[worker] for worker in workers]


def client_on_worker(relay: RelayProcess, worker: str) -> Any:
    return clients_on_workers(relay, [worker])[0]


def worker_pids(relay: RelayProcess) -> list[int]:
    """The workers' pids, from the line the supervisor prints after its endpoint."""
    assert wait_until(lambda: _PIDS_LINE.search(relay.log()) is not None), relay.log()
    match = _PIDS_LINE.search(relay.log())
    assert match is not None
    return [int(pid) for pid in match.group(1).split(",")]


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until(condition: Any, timeout: float = EXIT_TIMEOUT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def relay_cli(relay: RelayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args, "--data", str(relay.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("RELAY_")},
        check=False,
    )


def listed_keys(relay: RelayProcess, bucket: str) -> set[str]:
    """The bucket's keys as ``relay ls`` reads them from the data directory, beside the
    running server (a fresh process: no worker's cache is involved)."""
    result = relay_cli(relay, "ls", bucket)
    assert result.returncode == 0, result.stderr
    return {line.split()[-1] for line in result.stdout.splitlines() if line.strip()}


class SlowUpload:
    """A presigned PUT on its own connection, its body sent in two halves: the request is
    in flight, on a known worker, between ``start`` and ``finish``."""

    def __init__(self, relay: RelayProcess, bucket: str, key: str, size: int) -> None:
        client = boto_client(relay)
        self.url = urlsplit(
            client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key})
        )
        self.probe = urlsplit(
            client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key + "-probe"}
            )
        )
        self.body = os.urandom(size)
        self.connection = http.client.HTTPConnection(relay.host, relay.port, timeout=60)
        self.relay = relay

    def __enter__(self) -> SlowUpload:
        return self

    def __exit__(self, *_: object) -> None:
        self.connection.close()

    def start(self) -> str:
        """Send a probe and the upload's first half; the worker that has them."""
        self.connection.request("GET", f"{self.probe.path}?{self.probe.query}")
        answer = self.connection.getresponse()
        answer.read()
        assert answer.status == 404
        worker = request_worker(self.relay, answer.headers["x-amz-request-id"])
        self.connection.putrequest("PUT", f"{self.url.path}?{self.url.query}")
        self.connection.putheader("Content-Length", str(len(self.body)))
        self.connection.endheaders()
        self.connection.send(self.body[: len(self.body) // 2])
        return worker

    def finish(self) -> int:
        """Send the rest; the status (raises if the connection broke)."""
        self.connection.send(self.body[len(self.body) // 2 :])
        answer = self.connection.getresponse()
        answer.read()
        return answer.status


@pytest.fixture(scope="module")
def workers_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    relay = start_relay(
        tmp_path_factory.mktemp("workers"), workers=WORKERS, args=["--admin", "127.0.0.1:0"]
    )
    try:
        yield relay
    finally:
        code = stop_relay(relay.process)
    assert code == 0, relay.log()[-5000:]
    assert "Traceback" not in relay.log(), relay.log()[-5000:]


def test_every_worker_answers_on_the_one_port(workers_relay: RelayProcess) -> None:
    pids = worker_pids(workers_relay)
    assert len(pids) == WORKERS
    assert workers_relay.process.pid not in pids  # a supervisor and its workers
    slots = [str(slot) for slot in range(1, WORKERS + 1)]
    for client in clients_on_workers(workers_relay, slots):
        client.close()


def admin_get(relay: RelayProcess, path: str) -> tuple[int, str]:
    match = re.search(r"serving /metrics and /health at http://([\d.]+):(\d+)", relay.log())
    assert match, relay.log()
    connection = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=30)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def test_the_admin_listener_answers_for_every_worker(workers_relay: RelayProcess) -> None:
    for client in clients_on_workers(workers_relay, ("1", "2", "3")):
        client.list_buckets()
    assert admin_get(workers_relay, "/health/live") == (200, "live\n")
    assert admin_get(workers_relay, "/health/ready") == (200, f"ready: {WORKERS} workers\n")
    status, exposition = admin_get(workers_relay, "/metrics")
    assert status == 200
    served = set(
        re.findall(r'^relay_requests_total\{[^}]*worker="(\d+)"[^}]*\} [1-9]', exposition, re.M)
    )
    assert served == {"1", "2", "3"}
    assert exposition.count("# TYPE relay_requests_total counter") == 1  # one family


def test_different_buckets_written_from_two_workers(workers_relay: RelayProcess) -> None:
    first, second = clients_on_workers(workers_relay, ("1", "2"))
    written: dict[str, set[str]] = {"from-worker-1": set(), "from-worker-2": set()}
    first.create_bucket(Bucket="from-worker-1")
    second.create_bucket(Bucket="from-worker-2")
    failures: list[BaseException] = []

    def write(client: Any, bucket: str) -> None:
        try:
            for number in range(20):
                key = f"k{number:03d}"
                client.put_object(Bucket=bucket, Key=key, Body=key.encode() * 100)
                written[bucket].add(key)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=write, args=(first, "from-worker-1")),
        threading.Thread(target=write, args=(second, "from-worker-2")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    for client, bucket in ((first, "from-worker-1"), (second, "from-worker-2")):
        page = client.list_objects_v2(Bucket=bucket)
        assert {entry["Key"] for entry in page["Contents"]} == written[bucket]
        assert listed_keys(workers_relay, bucket) == written[bucket]
        body = client.get_object(Bucket=bucket, Key="k007")["Body"].read()
        assert body == b"k007" * 100


@pytest.mark.slow
def test_multipart_parts_on_different_workers_complete_on_another(
    workers_relay: RelayProcess,
) -> None:
    slots = ("1", "2", "3")
    on = dict(zip(slots, clients_on_workers(workers_relay, slots), strict=True))
    bucket, key = "multipart-across-workers", "big"
    on["1"].create_bucket(Bucket=bucket)
    upload = on["1"].create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB)]
    sent = []
    for number, (data, slot) in enumerate(zip(parts, ("2", "3", "2"), strict=True), start=1):
        answer = on[slot].upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data
        )
        assert request_worker(workers_relay, answer["ResponseMetadata"]["RequestId"]) == slot
        sent.append({"PartNumber": number, "ETag": answer["ETag"]})
    listed = on["3"].list_parts(Bucket=bucket, Key=key, UploadId=upload)
    assert [part["PartNumber"] for part in listed["Parts"]] == [1, 2, 3]
    done = on["1"].complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": sent}
    )
    assert request_worker(workers_relay, done["ResponseMetadata"]["RequestId"]) == "1"
    body = on["1"].get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts)).digest()
    assert listed_keys(workers_relay, bucket) == {key}


def test_one_bucket_written_from_two_workers(tmp_path: Path) -> None:
    relay = start_relay(tmp_path, workers=2)
    try:
        first, second = clients_on_workers(relay, ("1", "2"))
        bucket = "one-bucket-two-workers"
        first.create_bucket(Bucket=bucket)
        keys = []
        for number in range(6):
            client = first if number % 2 == 0 else second
            key = f"k{number}"
            client.put_object(Bucket=bucket, Key=key, Body=key.encode())
            keys.append(key)
        for client in (first, second):  # read-after-write on each worker
            page = client.list_objects_v2(Bucket=bucket)
            assert [entry["Key"] for entry in page["Contents"]] == keys
        assert listed_keys(relay, bucket) == set(keys)
    finally:
        stop_relay(relay.process)


def test_two_workers_writing_one_bucket_at_once_lose_nothing_and_race_fairly(
    tmp_path: Path,
) -> None:
    """Concurrent writes to one bucket from both workers: every PUT is acknowledged (no
    client sees the two writers collide), each racing If-None-Match: * has exactly one
    winner, and the commit log is one line."""
    relay = start_relay(tmp_path, workers=2)
    try:
        clients = clients_on_workers(relay, ("1", "2"))
        bucket = "one-bucket-at-once"
        clients[0].create_bucket(Bucket=bucket)
        errors: list[BaseException] = []
        winners: dict[str, list[int]] = {}

        def writer(index: int) -> None:
            client = clients[index % 2]
            try:
                for number in range(8):
                    key = f"w{index}/k{number}"
                    client.put_object(Bucket=bucket, Key=key, Body=key.encode())
                    race = f"race{number}"
                    try:
                        client.put_object(
                            Bucket=bucket, Key=race, Body=b"%d" % index, IfNoneMatch="*"
                        )
                        winners.setdefault(race, []).append(index)
                    except client.exceptions.ClientError as exc:
                        if exc.response["Error"]["Code"] != "PreconditionFailed":
                            raise
            except BaseException as exc:  # reported below, from the test thread
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(index,)) for index in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(winners) == [f"race{n}" for n in range(8)]
        assert all(len(won) == 1 for won in winners.values()), winners
        expected = {f"w{i}/k{n}" for i in range(6) for n in range(8)} | set(winners)
        for client in clients:
            for race, (index,) in winners.items():
                got = client.get_object(Bucket=bucket, Key=race)["Body"].read()
                assert got == b"%d" % index
        assert listed_keys(relay, bucket) == expected
        log = relay_cli(relay, "log", bucket)
        assert log.returncode == 0, log.stderr
        versions = sorted(int(v) for v in re.findall(r"^\s*(\d+)\s", log.stdout, re.M))
        assert versions == list(range(versions[0], versions[0] + len(versions)))
        assert len(versions) >= 2
    finally:
        stop_relay(relay.process)


def test_a_write_on_one_worker_is_read_on_another(workers_relay: RelayProcess) -> None:
    first, second = clients_on_workers(workers_relay, ("1", "2"))
    bucket = "read-after-write-across-workers"
    first.create_bucket(Bucket=bucket)
    second.head_bucket(Bucket=bucket)  # worker 2 now holds the bucket's empty root
    first.put_object(Bucket=bucket, Key="k", Body=b"written on worker 1")
    assert second.get_object(Bucket=bucket, Key="k")["Body"].read() == b"written on worker 1"


def test_the_commands_work_beside_a_running_server(
    workers_relay: RelayProcess, tmp_path: Path
) -> None:
    client = boto_client(workers_relay)
    bucket = "beside-the-server"
    client.create_bucket(Bucket=bucket)
    body = os.urandom(3 * MIB + 5)
    client.put_object(Bucket=bucket, Key="file.bin", Body=body)
    client.put_object(Bucket=bucket, Key="note.txt", Body=b"hello")

    ls = relay_cli(workers_relay, "ls", bucket, "--cids")
    assert ls.returncode == 0, ls.stderr
    assert "file.bin" in ls.stdout
    assert "note.txt" in ls.stdout

    source = tmp_path / "file.bin"
    source.write_bytes(body)
    cid = subprocess.run(
        [sys.executable, "-m", "relay", "cid", str(source)], capture_output=True, text=True
    )
    assert cid.returncode == 0, cid.stderr
    assert f"root   {cid.stdout.strip()}" in ls.stdout  # the stored root is the one computed

    car = tmp_path / "bucket.car"
    export = relay_cli(workers_relay, "export", bucket, "-o", str(car))
    assert export.returncode == 0, export.stderr
    assert car.stat().st_size > len(body)

    log = relay_cli(workers_relay, "log", bucket)
    assert log.returncode == 0, log.stderr
    assert len(log.stdout.splitlines()) == 3  # created, and two puts

    claims = tmp_path / "claims.jsonl"
    claims.write_text(
        '{"content": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",'
        ' "location": ["https://example.com/blob"]}\n'
    )
    imported = relay_cli(workers_relay, "claims", "import", str(claims))
    assert imported.returncode == 0, imported.stderr
    exported = relay_cli(workers_relay, "claims", "export")
    assert exported.returncode == 0, exported.stderr
    assert "https://example.com/blob" in exported.stdout

    # The server still writes after the commands have come and gone.
    client.put_object(Bucket=bucket, Key="after.txt", Body=b"still here")
    assert listed_keys(workers_relay, bucket) == {"file.bin", "note.txt", "after.txt"}


@pytest.mark.slow
def test_kill_9_of_a_worker_fails_its_requests_only_and_it_is_replaced(tmp_path: Path) -> None:
    relay = start_relay(tmp_path, workers=2)
    stack = contextlib.ExitStack()
    try:
        boto_client(relay).create_bucket(Bucket="victim")
        in_flight = stack.enter_context(SlowUpload(relay, "victim", "cut-short", 4 * MIB))
        victim_slot = in_flight.start()
        survivor_slot = "2" if victim_slot == "1" else "1"
        survivor = client_on_worker(relay, survivor_slot)
        pids = worker_pids(relay)
        victim_pid = pids[int(victim_slot) - 1]

        acknowledged: list[str] = []
        stop_writing = threading.Event()
        failures: list[BaseException] = []

        def keep_writing() -> None:
            # One bucket, written only through the survivor's connection.
            number = 0
            while not stop_writing.is_set():
                key = f"k{number:04d}"
                try:
                    survivor.put_object(Bucket="steady", Key=key, Body=key.encode())
                except BaseException as exc:
                    failures.append(exc)
                    return
                acknowledged.append(key)
                number += 1

        survivor.create_bucket(Bucket="steady")
        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            wait_until(lambda: len(acknowledged) >= 5)
            os.kill(victim_pid, signal.SIGKILL)
            with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
                in_flight.finish()  # its request died with it: no answer, never a 200
            replaced = re.compile(rf"relay: worker {victim_slot} started \(pid (\d+)\)")
            assert wait_until(lambda: replaced.search(relay.log()) is not None), relay.log()
            count = len(acknowledged)
            assert wait_until(lambda: len(acknowledged) >= count + 5)
        finally:
            stop_writing.set()
            writer.join()
        assert not failures  # the survivor served throughout
        match = replaced.search(relay.log())
        assert match is not None
        assert int(match.group(1)) != victim_pid
        assert f"worker {victim_slot} (pid {victim_pid}) killed by SIGKILL" in relay.log()
        # The replacement serves too.
        client_on_worker(relay, victim_slot).put_object(Bucket="victim", Key="after", Body=b"x")
        assert listed_keys(relay, "steady") == set(acknowledged)  # nothing acked is lost
        assert listed_keys(relay, "victim") == {"after"}  # the cut upload left nothing
    finally:
        stack.close()
        code = stop_relay(relay.process)
    assert code == 0, relay.log()


@pytest.mark.slow
def test_kill_9_of_the_supervisor_takes_every_worker_down(tmp_path: Path) -> None:
    relay = start_relay(tmp_path, workers=2)
    pids = worker_pids(relay)
    try:
        assert all(running(pid) for pid in pids)
        relay.process.kill()
        relay.process.wait()
        assert wait_until(lambda: not any(running(pid) for pid in pids)), pids
        with pytest.raises(ConnectionRefusedError):  # no process holds the port
            socket.create_connection((relay.host, relay.port), timeout=5).close()
    finally:
        for pid in pids:
            if running(pid):  # pragma: no cover - the failure above says why
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_sigterm_lets_requests_in_flight_finish_then_stops_every_worker(
    tmp_path: Path,
) -> None:
    relay = start_relay(tmp_path, workers=2)
    pids = worker_pids(relay)
    boto_client(relay).create_bucket(Bucket="graceful")
    with SlowUpload(relay, "graceful", "finished", 2 * MIB) as in_flight:
        in_flight.start()
        relay.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "stopping the workers" in relay.log())
        assert in_flight.finish() == 200  # the worker finished it while stopping
    assert relay.process.wait(EXIT_TIMEOUT_SECONDS) == 0
    assert not any(running(pid) for pid in pids)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((relay.host, relay.port), timeout=5).close()
    assert "finished" in relay_cli(relay, "ls", "graceful").stdout


@pytest.mark.slow
def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    relay = start_relay(tmp_path, workers=2)
    pids = worker_pids(relay)
    boto_client(relay).create_bucket(Bucket="at-once")
    with SlowUpload(relay, "at-once", "never", 2 * MIB) as in_flight:
        in_flight.start()
        relay.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "stopping the workers" in relay.log())
        relay.process.send_signal(signal.SIGINT)
        assert relay.process.wait(EXIT_TIMEOUT_SECONDS) == 3  # EXIT_STOPPED_AT_ONCE
        assert not any(running(pid) for pid in pids)
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            in_flight.finish()
    assert relay_cli(relay, "ls", "at-once").stdout.strip() == ""
