"""The consistency checker on hand-made histories: each check passes a correct history and
fails one that breaks it (so a run reporting 0 violations means something)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
from consistency import ABSENT, NOT_SENT, CommitEntry, Operation, Plan, _Client, _request, check


def md5(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()


def put(value: str, start: float, end: float, status: int | None = 200, **kw: Any) -> Operation:
    kind = kw.pop("kind", "put")
    return Operation(
        kind, kw.pop("key", "k"), kw.pop("host", "h1"), "c", start, end, status, value,
        md5(value), **kw,
    )  # fmt: skip


def delete(start: float, end: float, status: int | None = 204, key: str = "k") -> Operation:
    return Operation("delete", key, "h1", "c", start, end, status, ABSENT)


def get(value: str, start: float, end: float, **kw: Any) -> Operation:
    status = 404 if value == ABSENT else 200
    return Operation(
        "get", kw.pop("key", "k"), kw.pop("host", "h1"), "c", start, end, status, value, **kw
    )


def listing(listed: dict[str, str], start: float, end: float, final: bool = False) -> Operation:
    return Operation("list", None, "h1", "c", start, end, 200, listed=listed, final=final)


def failed(history: list[Operation], log: list[CommitEntry] | None = None) -> set[str]:
    return check(history, log).checks_failed()


def test_a_correct_history_has_no_violation_and_is_counted() -> None:
    history = [
        put("a", 0, 1),
        get("a", 2, 3),
        put("b", 4, 5, kind="put_if_match", expected_etag=md5("a")),
        listing({"k": md5("b")}, 6, 7),
        delete(8, 9),
        get(ABSENT, 10, 11),
        put("c", 12, 13, kind="put_if_absent"),
        put("d", 14, 15, 412, kind="put_if_absent"),
        put("e", 14, 15, 412, kind="put_if_match", expected_etag=md5("a")),
        get("c", 16, 17, final=True),
        get("c", 16, 17, host="h2", final=True),
    ]
    report = check(history, [CommitEntry(0, "r0"), CommitEntry(1, "r1", "r0")])
    assert report.violations == []
    assert report.operations["put_if_absent"] == 2
    assert report.acknowledged["put_if_absent"] == 1
    assert sum(report.refused.values()) == 2
    assert report.commits == 2
    assert "violations: 0" in report.lines()


def test_a_read_that_misses_an_acknowledged_write_is_stale() -> None:
    history = [put("a", 0, 1), put("b", 2, 3), get("a", 4, 5)]
    assert failed(history) == {"read-after-write"}
    # Overlapping the second write, either value is allowed.
    assert failed([put("a", 0, 1), put("b", 2, 5), get("a", 4, 6)]) == set()


def test_a_read_of_a_value_written_after_it_ended_is_from_the_future() -> None:
    assert failed([get("a", 0, 1), put("a", 2, 3)]) == {"read-after-write"}


def test_a_read_of_a_deleted_key_after_the_delete_is_stale() -> None:
    assert failed([put("a", 0, 1), delete(2, 3), get("a", 4, 5)]) == {"read-after-write"}
    assert failed([put("a", 0, 1), get(ABSENT, 2, 3)]) == {"read-after-write"}


def test_a_write_refused_by_its_precondition_is_never_seen() -> None:
    history = [put("a", 0, 1), put("b", 2, 3, 412, kind="put_if_absent"), get("b", 4, 5)]
    assert failed(history) == {"refused write seen"}


def test_an_unanswered_write_may_be_seen_but_supersedes_nothing() -> None:
    assert failed([put("a", 0, 1, None), get("a", 5, 6)]) == set()
    assert failed([put("a", 0, 1), put("b", 2, 3, 503), get("a", 4, 5)]) == set()
    # It may even take effect after the client gave up on it.
    assert failed([put("a", 0, 1), put("b", 2, 3, None), get("b", 9, 10)]) == set()


def test_an_acknowledged_write_missing_afterwards_is_lost() -> None:
    history = [put("a", 0, 1), get(ABSENT, 5, 6, final=True)]
    assert failed(history) == {"final state"}


def test_a_list_that_misses_an_acknowledged_write_breaks_list_after_write() -> None:
    assert failed([put("a", 0, 1), listing({}, 2, 3)]) == {"list-after-write"}
    assert failed([put("a", 0, 1), put("b", 2, 3), listing({"k": md5("a")}, 4, 5)]) == {
        "list-after-write"
    }


def test_two_creations_with_no_delete_between_are_two_winners() -> None:
    racing = [put("a", 0, 2, kind="put_if_absent"), put("b", 1, 3, kind="put_if_absent")]
    assert "two If-None-Match winners" in failed(racing)
    # A DELETE that may fall between them opens a second absent period.
    assert failed([*racing, delete(1, 2)]) == set()
    # One that was refused or answered 4xx does not.
    assert "two If-None-Match winners" in failed([*racing, delete(1, 2, 403)])


def test_a_creation_over_an_acknowledged_object_is_decided_wrongly() -> None:
    history = [put("a", 0, 1), put("b", 2, 3, kind="put_if_absent")]
    assert failed(history) == {"If-None-Match decided on a present key"}


def test_a_creation_refused_on_a_key_never_written_is_decided_wrongly() -> None:
    assert failed([put("b", 0, 1, 412, kind="put_if_absent")]) == {
        "If-None-Match refused on an absent key"
    }


def test_if_match_on_a_superseded_etag_is_decided_wrongly() -> None:
    history = [
        put("a", 0, 1),
        put("b", 2, 3),
        put("c", 4, 5, kind="put_if_match", expected_etag=md5("a")),
    ]
    assert failed(history) == {"If-Match decided on another value"}
    refused = [put("a", 0, 1), put("c", 2, 3, 412, kind="put_if_match", expected_etag=md5("a"))]
    assert failed(refused) == {"If-Match refused its own value"}
    missing = [put("a", 0, 1), put("c", 2, 3, 404, kind="put_if_match", expected_etag=md5("x"))]
    assert failed(missing) == {"If-Match answered 404 on a present key"}


def test_hosts_that_disagree_afterwards_are_reported() -> None:
    history = [
        put("a", 0, 3),
        put("b", 1, 2),
        get("a", 5, 6, final=True),
        get("b", 5, 6, host="h2", final=True),
    ]
    assert failed(history) == {"hosts disagree"}


def test_the_commit_log_must_be_one_line() -> None:
    line = [CommitEntry(0, "r0"), CommitEntry(1, "r1", "r0"), CommitEntry(2, "r2", "r1")]
    assert failed([], line) == set()
    assert failed([], [line[0], line[2]]) == {"commit log has a gap"}
    assert failed([], [*line, CommitEntry(2, "r2x", "r1")]) == {"commit log forked"}
    assert failed([], [line[0], line[1], CommitEntry(2, "r2", "r0")]) == {"commit log forked"}


def test_a_write_that_never_reached_the_server_took_no_effect() -> None:
    history = [put("a", 0, 1, NOT_SENT), get("a", 2, 3)]
    assert failed(history) == {"refused write seen"}
    assert check(history).not_sent == 1


def simulated_history(seed: int, operations: int, *, stale: bool = False) -> list[Operation]:
    """A correct server: each operation takes effect at one random moment inside its
    interval, in that order, on one copy of the keys. ``stale``: its GETs answer from the
    state as it was 50 operations earlier (a cache nobody checks)."""
    chooser = random.Random(seed)
    planned = []
    for number in range(operations):
        start = chooser.uniform(0, operations / 10)
        end = start + chooser.uniform(0.01, 2)
        moment = chooser.uniform(start, end)
        kind = chooser.choice(["put", "put_if_absent", "put_if_match", "delete", "get", "list"])
        planned.append((moment, number, kind, chooser.choice("abc"), start, end))
    state: dict[str, str] = {}
    earlier: list[dict[str, str]] = []
    history = []
    for _moment, number, kind, key, start, end in sorted(planned):
        earlier.append(dict(state))
        value, status, expected = f"v{number}", 200, None
        if kind == "get":
            value = (earlier[max(0, len(earlier) - 50)] if stale else state).get(key, ABSENT)
            history.append(get(value, start, end, key=key))
            continue
        if kind == "list":
            shown = {k: md5(v) for k, v in state.items()}
            history.append(listing(shown, start, end))
            continue
        if kind == "delete":
            state.pop(key, None)
            history.append(delete(start, end, key=key))
            continue
        if kind == "put_if_absent" and key in state:
            status = 412
        if kind == "put_if_match":
            expected = md5(chooser.choice([state.get(key, "none"), "other"]))
            if key not in state:
                status = 404
            elif md5(state[key]) != expected:
                status = 412
        if status == 200:
            state[key] = value
        history.append(put(value, start, end, status, kind=kind, key=key, expected_etag=expected))
    return history


@pytest.mark.parametrize("seed", range(5))
def test_a_correct_server_never_shows_a_violation(seed: int) -> None:
    report = check(simulated_history(seed, 2000))
    assert report.violations == [], report.lines()
    assert report.acknowledged["put_if_absent"] > 0


def test_a_server_answering_from_a_stale_cache_is_caught() -> None:
    assert "read-after-write" in check(simulated_history(0, 2000, stale=True)).checks_failed()


def test_a_connection_error_is_unanswered_never_unsent() -> None:
    # A request cut off by a killed server is retried beneath botocore on a new connection,
    # which is refused: "could not connect" does not prove the first attempt was not
    # received and committed, so a read that sees it must not be a violation.
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    def cut_off() -> None:
        raise ConnectionClosedError(endpoint_url="http://10.77.0.3:9000/b/k")

    def refused() -> None:
        raise EndpointConnectionError(endpoint_url="http://10.77.0.3:9000/b/k")

    assert _request(cut_off)[0] is None
    assert _request(refused)[0] is None


def test_a_get_whose_body_is_cut_off_is_unanswered() -> None:
    # A host killed after a GET's status line but before its body: the read is as
    # unanswered as one killed earlier, recorded, never an error out of the workload.
    from botocore.exceptions import ResponseStreamingError

    class CutBody:
        def read(self) -> bytes:
            raise ResponseStreamingError(error="Connection broken: IncompleteRead")

    class Client:
        def get_object(self, **_: Any) -> dict[str, Any]:
            return {"Body": CutBody(), "ETag": '"e"', "ResponseMetadata": {"HTTPStatusCode": 200}}

    recorded: list[Operation] = []
    client = _Client("c0", "h1", Client(), Plan({"h1": "http://h1"}, "b"), recorded.append)
    assert not client.one("get", "k0")
    [operation] = recorded
    assert (operation.status, operation.value) == (None, None)
