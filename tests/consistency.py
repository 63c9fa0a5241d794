"""What clients of several relay hosts observe, and a checker of it against S3's promises.

The **workload** (``run_workload``) runs client threads against one or more relay hosts,
all working on the SAME few keys of one bucket: plain PUTs, ``If-None-Match: *`` creations,
``If-Match: <etag>`` overwrites, DELETEs, GETs and LISTs. Every write carries a body no
other write has (``client:sequence:random``), so whatever a GET returns names its write,
and whatever a LIST shows (the ETag, the body's MD5) does too. Each operation is recorded
as an ``Operation``: kind, key, host, client, start and end (``time.monotonic``, one
clock: the workload is one process), HTTP status (None when no answer came), and what it
wrote or saw. ``final_reads`` then reads every key on every host.

The **checker** (``check``) is pure: it reads a history (and the bucket's commit log) and
returns a ``Report`` of figures and violations. Its model, per key:

- A write *took effect* if it was acknowledged (2xx). A write refused by a precondition
  (412, or 404 for ``If-Match`` on a missing key) or by another 4xx never took effect. A
  write with no answer or a 5xx *may* have taken effect, at any time after it started
  (the server may commit after the client gave up): it may be observed, it supersedes
  nothing. The key starts absent (a virtual write at minus infinity); a DELETE writes
  "absent".
- A write ``w`` is *superseded* for an observation that starts at ``s`` when some
  acknowledged write started after ``w`` was acknowledged and was itself acknowledged
  before ``s``. An observation over ``[s, e]`` may see a value only if a write of it
  started before ``e`` (nothing from the future) and is not superseded at ``s``. This is
  read-after-write (a read that starts after a write was acknowledged sees it or a later
  one, never an older value), applied to GETs, to every key of a LIST, to the state a
  conditional write decided against, and to the final reads (where it means: every
  acknowledged write is visible on every host, or superseded by a later one).
- Two acknowledged ``If-None-Match: *`` creations of one key need a DELETE that can be
  placed between them (one winner per absent period).
- After the workload every host returns the same value for each key.
- The commit log is one line: versions consecutive from the first, none repeated, and
  each commit's parent (where the log records one) the previous commit's root.

A violation names the check, the key and the operations involved; the figures count
operations by kind and outcome.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ABSENT = "<absent>"
WRITE_KINDS = ("put", "put_if_absent", "put_if_match", "delete")
READ_KINDS = ("get", "list")
INFINITY = float("inf")
# The status recorded when the client could not connect: the request never left it.
NOT_SENT = 0


@dataclass(frozen=True)
class Operation:
    """One client request and what came of it.

    ``value``: for a PUT the body it wrote, for a GET the body it read (``ABSENT`` on
    404), for a DELETE ``ABSENT``. ``etag``: for a PUT the MD5 of its body (computed by
    the client, so even an unanswered PUT is attributable), for ``put_if_match`` the ETag
    it required in ``expected_etag``. ``listed``: for a LIST, key -> ETag shown.
    ``status``: the HTTP status, None when no answer came, ``NOT_SENT`` when the client
    could not even connect."""

    kind: str
    key: str | None
    host: str
    client: str
    start: float
    end: float
    status: int | None
    value: str | None = None
    etag: str | None = None
    expected_etag: str | None = None
    listed: Mapping[str, str] | None = None
    final: bool = False

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        """Refused by its precondition: it never took effect."""
        if self.kind == "put_if_match" and self.status == 404:
            return True
        return self.status == 412

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def unanswered(self) -> bool:
        """No answer or a server error: it may or may not have taken effect."""
        return self.status is None or self.status >= 500

    def describe(self) -> str:
        shown = self.value if self.kind != "list" else f"{len(self.listed or {})} keys"
        return (
            f"{self.kind} {self.key or ''} on {self.host} by {self.client}"
            f" [{self.start:.3f}, {self.end:.3f}] -> {self.status} ({shown})"
        )


@dataclass(frozen=True)
class CommitEntry:
    version: int
    root: str
    parent: str | None = None


@dataclass(frozen=True)
class Violation:
    check: str
    key: str | None
    detail: str

    def __str__(self) -> str:
        return f"{self.check} [{self.key}]: {self.detail}"


@dataclass
class Report:
    operations: Counter[str] = field(default_factory=Counter)
    acknowledged: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    unanswered: int = 0
    not_sent: int = 0
    other_errors: int = 0
    commits: int = 0
    violations: list[Violation] = field(default_factory=list)

    def checks_failed(self) -> set[str]:
        return {violation.check for violation in self.violations}

    def lines(self) -> list[str]:
        kinds = sorted(self.operations)
        lines = [
            "operations: " + ", ".join(f"{kind} {self.operations[kind]}" for kind in kinds),
            "acknowledged: " + ", ".join(f"{kind} {self.acknowledged[kind]}" for kind in kinds),
            f"refused (412): {sum(self.refused.values())}, conflicts (409): {self.conflicts},"
            f" unanswered or 5xx: {self.unanswered}, not sent (no connection): {self.not_sent},"
            f" other errors: {self.other_errors}",
            f"commits in the log: {self.commits}",
            f"violations: {len(self.violations)}",
        ]
        lines += [f"  {violation}" for violation in self.violations[:50]]
        return lines


# -- the checker (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Write:
    value: str
    start: float
    end: float  # INFINITY when it may have taken effect after its answer (or had none)
    acknowledged: bool
    operation: Operation | None  # None: the key's initial absence


def _writes_by_key(history: Sequence[Operation]) -> dict[str, list[_Write]]:
    writes: dict[str, list[_Write]] = {}
    for op in history:
        if op.kind not in WRITE_KINDS or op.key is None:
            continue
        if not (op.acknowledged or op.unanswered):
            continue  # refused or a client error: never took effect
        value = ABSENT if op.kind == "delete" else (op.value or "")
        end = op.end if op.acknowledged else INFINITY
        writes.setdefault(op.key, []).append(_Write(value, op.start, end, op.acknowledged, op))
    return writes


# Every key is absent before the history begins.
_INITIAL = _Write(ABSENT, -INFINITY, -INFINITY, True, None)


class _Candidates:
    """A key's writes that may have taken effect (its initial absence first), indexed so
    that whether one is superseded at a moment is a binary search, not a scan: the
    acknowledged writes by start, and for each position the earliest-acknowledged write
    among those starting there or later."""

    def __init__(self, writes: Iterable[_Write]) -> None:
        self.writes = [_INITIAL, *writes]
        acknowledged = sorted(
            (w for w in self.writes if w.acknowledged and w.operation is not None),
            key=lambda w: w.start,
        )
        self._starts = [w.start for w in acknowledged]
        self._earliest: list[_Write] = []
        for write in reversed(acknowledged):
            if self._earliest and self._earliest[-1].end <= write.end:
                self._earliest.append(self._earliest[-1])
            else:
                self._earliest.append(write)
        self._earliest.reverse()

    def superseded(self, write: _Write, start: float) -> _Write | None:
        """An acknowledged write that started after ``write`` was acknowledged and was
        itself acknowledged before ``start``, if there is one."""
        position = bisect.bisect_right(self._starts, write.end)
        if position == len(self._starts):
            return None
        earliest = self._earliest[position]
        return earliest if earliest.end < start else None


def _admissible(
    accepts: Callable[[str], bool], start: float, end: float, candidates: _Candidates
) -> tuple[bool, str]:
    """Whether an observation over ``[start, end]`` may have seen a value ``accepts``
    takes; if not, why not."""
    matching = [write for write in candidates.writes if accepts(write.value)]
    if not matching:
        return False, "no write of this value took effect"
    reasons: Counter[str] = Counter()
    for write in matching:
        if write.start >= end:
            reasons["written only after the observation ended"] += 1
            continue
        later = candidates.superseded(write, start)
        if later is None:
            return True, ""
        assert later.operation is not None
        reasons[f"superseded by {later.operation.describe()}"] += 1
    shown = [why if count == 1 else f"{why} (x{count})" for why, count in reasons.items()]
    more = f"; and {len(shown) - 3} more" if len(shown) > 3 else ""
    return False, "; ".join(shown[:3]) + more


def _observe(
    report: Report,
    check: str,
    key: str,
    op: Operation,
    accepts: Callable[[str], bool],
    seen: str,
    candidates: _Candidates,
) -> None:
    ok, why = _admissible(accepts, op.start, op.end, candidates)
    if not ok:
        report.violations.append(Violation(check, key, f"{op.describe()} saw {seen}: {why}"))


def _etag_values(history: Sequence[Operation]) -> dict[str, str]:
    return {
        op.etag: op.value for op in history if op.kind.startswith("put") and op.etag and op.value
    }


def check(history: Sequence[Operation], commit_log: Sequence[CommitEntry] | None = None) -> Report:
    """Every figure and every violation of ``history`` (see the module docstring)."""
    report = Report()
    for op in history:
        report.operations[op.kind] += 1
        if op.acknowledged:
            report.acknowledged[op.kind] += 1
        elif op.refused:
            report.refused[op.kind] += 1
        elif op.conflict:
            report.conflicts += 1
        elif op.unanswered:
            report.unanswered += 1
        elif op.status == NOT_SENT:
            report.not_sent += 1
        elif not (op.kind == "get" and op.status == 404):
            report.other_errors += 1
    writes = _writes_by_key(history)
    keys = sorted({op.key for op in history if op.key is not None})
    candidates = {key: _Candidates(writes.get(key, [])) for key in keys}
    refused_values = {
        op.value: op.status
        for op in history
        if op.kind.startswith("put") and not (op.acknowledged or op.unanswered)
    }
    by_etag = _etag_values(history)

    def observed(check_name: str, key: str, op: Operation, value: str) -> None:
        if value != ABSENT and value in refused_values:
            report.violations.append(
                Violation(
                    "refused write seen",
                    key,
                    f"{op.describe()} saw {value} (its write got {refused_values[value]})",
                )
            )
            return
        _observe(report, check_name, key, op, lambda v: v == value, value, candidates[key])

    for op in history:
        name = "final state" if op.final else "read-after-write"
        if op.kind == "get" and op.key is not None and op.status in (200, 404):
            observed(name, op.key, op, op.value if op.status == 200 and op.value else ABSENT)
        elif op.kind == "list" and op.acknowledged and op.listed is not None:
            for key in keys:
                etag = op.listed.get(key)
                value = ABSENT if etag is None else by_etag.get(etag, f"<unknown etag {etag}>")
                observed("list-after-write" if not op.final else name, key, op, value)
        elif op.kind == "put_if_absent" and op.key is not None:
            if op.acknowledged:
                _observe(
                    report,
                    "If-None-Match decided on a present key",
                    op.key,
                    op,
                    lambda v: v == ABSENT,
                    "absent",
                    candidates[op.key],
                )
            elif op.refused:
                _observe(
                    report,
                    "If-None-Match refused on an absent key",
                    op.key,
                    op,
                    lambda v: v != ABSENT,
                    "present",
                    candidates[op.key],
                )
        elif op.kind == "put_if_match" and op.key is not None and op.expected_etag:
            required = by_etag.get(op.expected_etag, f"<etag {op.expected_etag}>")
            if op.acknowledged:
                _observe(
                    report,
                    "If-Match decided on another value",
                    op.key,
                    op,
                    lambda v, want=required: v == want,
                    required,
                    candidates[op.key],
                )
            elif op.status == 404:
                _observe(
                    report,
                    "If-Match answered 404 on a present key",
                    op.key,
                    op,
                    lambda v: v == ABSENT,
                    "absent",
                    candidates[op.key],
                )
            elif op.refused:
                _observe(
                    report,
                    "If-Match refused its own value",
                    op.key,
                    op,
                    lambda v, want=required: v != want,
                    f"not {required}",
                    candidates[op.key],
                )
    _check_single_creation(report, history, writes)
    _check_convergence(report, history)
    if commit_log is not None:
        _check_commit_log(report, commit_log)
    return report


def _check_single_creation(
    report: Report, history: Sequence[Operation], writes: Mapping[str, list[_Write]]
) -> None:
    winners: dict[str, list[Operation]] = {}
    for op in history:
        if op.kind == "put_if_absent" and op.acknowledged and op.key is not None:
            winners.setdefault(op.key, []).append(op)
    for key, ops in winners.items():
        deletes = [w for w in writes.get(key, []) if w.value == ABSENT]
        for a, b in itertools.combinations(ops, 2):
            if not any(
                _fits_between(first, delete, second)
                for first, second in ((a, b), (b, a))
                for delete in deletes
            ):
                report.violations.append(
                    Violation(
                        "two If-None-Match winners",
                        key,
                        f"{a.describe()} and {b.describe()} with no DELETE between",
                    )
                )


def _fits_between(first: Operation, delete: _Write, second: Operation) -> bool:
    """Whether points ``t1 < td < t2`` exist inside the three operations' intervals."""
    return first.start < delete.end and first.start < second.end and delete.start < second.end


def _check_convergence(report: Report, history: Sequence[Operation]) -> None:
    seen: dict[str, dict[str, str]] = {}
    for op in history:
        if op.final and op.kind == "get" and op.key is not None and op.status in (200, 404):
            value = op.value if op.status == 200 and op.value else ABSENT
            seen.setdefault(op.key, {})[op.host] = value
    for key, by_host in sorted(seen.items()):
        if len(set(by_host.values())) > 1:
            report.violations.append(Violation("hosts disagree", key, repr(by_host)))


def _check_commit_log(report: Report, log: Sequence[CommitEntry]) -> None:
    report.commits = len(log)
    entries = sorted(log, key=lambda entry: entry.version)
    for previous, entry in itertools.pairwise(entries):
        if entry.version == previous.version:
            report.violations.append(
                Violation("commit log forked", None, f"version {entry.version} twice")
            )
        elif entry.version != previous.version + 1:
            report.violations.append(
                Violation(
                    "commit log has a gap",
                    None,
                    f"version {previous.version} is followed by {entry.version}",
                )
            )
        elif entry.parent is not None and entry.parent != previous.root:
            report.violations.append(
                Violation(
                    "commit log forked",
                    None,
                    f"version {entry.version}'s parent {entry.parent} is not"
                    f" version {previous.version}'s root {previous.root}",
                )
            )


# -- the workload ----------------------------------------------------------------------------

# How often each kind is chosen: writes of every kind on a few keys, so they race.
OPERATION_WEIGHTS = {
    "put": 4,
    "put_if_absent": 3,
    "put_if_match": 3,
    "delete": 2,
    "get": 5,
    "list": 2,
}


# A client whose host did not answer waits this long before its next request (as SDKs
# back off), so a dead host's clients do not spin.
RETRY_PAUSE_SECONDS = 0.2


@dataclass(frozen=True)
class Plan:
    """``endpoints``: host name -> S3 endpoint. Each host gets ``clients_per_host``
    client threads, each doing ``operations_per_client`` operations (or stopping at
    ``stop`` when set)."""

    endpoints: Mapping[str, str]
    bucket: str
    keys: Sequence[str] = ("k0", "k1", "k2")
    clients_per_host: int = 3
    operations_per_client: int = 40
    seed: int = 17
    timeout_seconds: float = 15.0


def s3_client(endpoint: str, *, timeout_seconds: float = 15.0) -> Any:
    """A boto3 client with no retries (each request is recorded exactly as sent) and no
    access to ``~/.aws``."""
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=BotoConfig(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _request(call: Callable[[], Any]) -> tuple[int | None, Any]:
    """The status and response of one request, None when no answer came.

    A connection error is never taken to mean that nothing was sent. A request on a
    kept-alive connection whose server is killed mid-request is sent again on a new
    connection beneath botocore (``max_attempts=1`` notwithstanding), and what the caller
    sees is that new connection's "connection refused" (``EndpointConnectionError``),
    while the first attempt may have committed. So every such failure is unanswered: it
    may have taken effect at any time after it began. (``NOT_SENT`` stays in the model,
    for a harness that can know.)"""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = call()
    except ClientError as exc:
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)), exc
    except (BotoCoreError, OSError) as exc:
        return None, exc
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), response


class _Client:
    def __init__(
        self, name: str, host: str, client: Any, plan: Plan, record: Callable[[Operation], None]
    ) -> None:
        self.name = name
        self.host = host
        self.client = client
        self.plan = plan
        self.record = record
        self.sequence = itertools.count()
        self.random = random.Random(f"{plan.seed}:{name}")
        self.etags: dict[str, str] = {}  # key -> the last ETag this client wrote or read

    def body(self) -> str:
        return f"{self.name}:{next(self.sequence)}:{secrets.token_hex(4)}"

    def one(self, kind: str, key: str, *, final: bool = False) -> bool:
        """Do and record one operation; False when the host did not answer it."""
        bucket = self.plan.bucket
        start = time.monotonic()
        value: str | None = None
        etag: str | None = None
        expected: str | None = None
        listed: dict[str, str] | None = None
        if kind in ("put", "put_if_absent", "put_if_match"):
            value = self.body()
            etag = hashlib.md5(value.encode()).hexdigest()
            extra: dict[str, str] = {}
            if kind == "put_if_absent":
                extra["IfNoneMatch"] = "*"
            elif kind == "put_if_match":
                expected = self.etags.get(key, "0" * 32)
                extra["IfMatch"] = f'"{expected}"'
            status, _ = _request(
                lambda: self.client.put_object(Bucket=bucket, Key=key, Body=value.encode(), **extra)
            )
            if status == 200:
                self.etags[key] = etag
        elif kind == "delete":
            value = ABSENT
            status, _ = _request(lambda: self.client.delete_object(Bucket=bucket, Key=key))
        elif kind == "get":
            # The body is read inside the request: a host killed mid-body leaves the GET
            # unanswered, like one killed before its status line.
            status, response = _request(lambda: self._get_whole(bucket, key))
            if status == 200:
                value = response["Body"]
                self.etags[key] = str(response["ETag"]).strip('"')
            elif status == 404:
                value = ABSENT
        else:
            status, response = _request(lambda: self.client.list_objects_v2(Bucket=bucket))
            if status == 200:
                listed = {
                    item["Key"]: str(item["ETag"]).strip('"')
                    for item in response.get("Contents", [])
                }
        self.record(
            Operation(
                kind,
                key if kind != "list" else None,
                self.host,
                self.name,
                start,
                time.monotonic(),
                status,
                value,
                etag,
                expected,
                listed,
                final,
            )
        )
        return status is not None and status not in (NOT_SENT, 503)

    def _get_whole(self, bucket: str, key: str) -> dict[str, Any]:
        response: dict[str, Any] = self.client.get_object(Bucket=bucket, Key=key)
        return {**response, "Body": response["Body"].read().decode()}

    def run(self, stop: threading.Event | None) -> None:
        kinds = list(OPERATION_WEIGHTS)
        weights = list(OPERATION_WEIGHTS.values())
        for _ in range(self.plan.operations_per_client):
            if stop is not None and stop.is_set():
                return
            kind = self.random.choices(kinds, weights)[0]
            if not self.one(kind, self.random.choice(list(self.plan.keys))):
                time.sleep(RETRY_PAUSE_SECONDS)


class History:
    """The operations recorded so far, from every client thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.operations: list[Operation] = []

    def record(self, operation: Operation) -> None:
        with self._lock:
            self.operations.append(operation)


def run_workload(
    plan: Plan,
    history: History,
    *,
    enter: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Every client thread of ``plan``, to the end; ``enter`` runs first on each thread
    (to join the clients' network namespace). Blocks until all are done."""
    failures: list[BaseException] = []

    def client_thread(name: str, host: str, endpoint: str) -> None:
        try:
            if enter is not None:
                enter()
            client = s3_client(endpoint, timeout_seconds=plan.timeout_seconds)
            _Client(name, host, client, plan, history.record).run(stop)
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=client_thread, args=(f"{host}-c{number}", host, endpoint))
        for host, endpoint in plan.endpoints.items()
        for number in range(plan.clients_per_host)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def final_reads(plan: Plan, history: History, hosts: Sequence[str] | None = None) -> None:
    """One GET of every key and one LIST on each host (all of ``plan``'s by default),
    recorded as final. Runs on the calling thread (which must be in the clients'
    namespace)."""
    for host in hosts or list(plan.endpoints):
        client = _Client(
            f"{host}-final", host, s3_client(plan.endpoints[host]), plan, history.record
        )
        for key in plan.keys:
            client.one("get", key, final=True)
        client.one("list", "", final=True)
