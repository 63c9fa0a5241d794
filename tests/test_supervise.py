"""The supervisor's decisions, walked through without a process (``relay.supervise``)."""

from __future__ import annotations

import signal

import pytest

from relay.supervise import (
    EXIT_COULD_NOT_START,
    EXIT_STOPPED,
    EXIT_STOPPED_AT_ONCE,
    RESTART_DELAY_MAX_SECONDS,
    RESTART_DELAY_MIN_SECONDS,
    STABLE_AFTER_SECONDS,
    Nothing,
    Restart,
    StopAll,
    Supervision,
    describe_exit,
)


def serving(workers: int = 2) -> Supervision:
    supervision = Supervision(workers)
    for slot in range(1, workers + 1):
        supervision.worker_ready(slot)
    return supervision


def test_the_last_worker_ready_at_start_is_the_moment_to_announce() -> None:
    supervision = Supervision(3)
    assert not supervision.worker_ready(2)
    assert not supervision.worker_ready(1)
    assert supervision.worker_ready(3)
    assert not supervision.worker_ready(3)  # a replacement ready later announces nothing


def test_a_worker_that_dies_before_serving_at_start_stops_everything() -> None:
    supervision = Supervision(2)
    supervision.worker_ready(1)
    assert supervision.worker_exited(2, 1, None) == StopAll(signal.SIGKILL)
    assert supervision.worker_exited(1, -signal.SIGKILL, 5.0) == Nothing()
    assert supervision.exit_code() == EXIT_COULD_NOT_START


def test_a_crash_loop_backs_off_doubling_up_to_the_maximum() -> None:
    supervision = serving()
    delays = []
    for _ in range(12):
        action = supervision.worker_exited(1, -signal.SIGSEGV, 0.5)
        assert isinstance(action, Restart)
        assert action.slot == 1
        delays.append(action.delay_seconds)
    assert delays[0] == RESTART_DELAY_MIN_SECONDS
    assert delays[1] == 2 * RESTART_DELAY_MIN_SECONDS
    assert delays == sorted(delays)
    assert delays[-1] == RESTART_DELAY_MAX_SECONDS
    # The other slot's backoff is its own.
    assert supervision.worker_exited(2, -signal.SIGKILL, 1.0) == Restart(
        2, RESTART_DELAY_MIN_SECONDS
    )


def test_a_worker_that_served_long_restarts_at_once_again() -> None:
    supervision = serving()
    for _ in range(5):
        supervision.worker_exited(1, 1, 0.1)
    action = supervision.worker_exited(1, -signal.SIGKILL, STABLE_AFTER_SECONDS + 1)
    assert action == Restart(1, RESTART_DELAY_MIN_SECONDS)


def test_a_replacement_that_dies_before_serving_is_restarted_with_backoff() -> None:
    supervision = serving()
    supervision.worker_exited(1, -signal.SIGKILL, 10.0)
    action = supervision.worker_exited(1, 1, None)
    assert action == Restart(1, 2 * RESTART_DELAY_MIN_SECONDS)


def test_the_first_signal_stops_gracefully_and_exits_zero_when_workers_finish() -> None:
    supervision = serving()
    assert supervision.stop_signal() == StopAll(signal.SIGTERM)
    assert supervision.worker_exited(1, 0, 3.0) == Nothing()  # no restart while stopping
    assert supervision.worker_exited(2, 0, 3.0) == Nothing()
    assert supervision.exit_code() == EXIT_STOPPED


def test_a_second_signal_kills_at_once_and_says_so() -> None:
    supervision = serving()
    supervision.stop_signal()
    assert supervision.stop_signal() == StopAll(signal.SIGKILL)
    supervision.worker_exited(1, -signal.SIGKILL, 3.0)
    assert supervision.exit_code() == EXIT_STOPPED_AT_ONCE


def test_a_worker_that_fails_while_stopping_is_not_a_clean_stop() -> None:
    supervision = serving()
    supervision.stop_signal()
    supervision.worker_exited(1, 0, 3.0)
    supervision.worker_exited(2, 70, 3.0)
    assert supervision.exit_code() == EXIT_STOPPED_AT_ONCE


def test_exits_read_as_sentences() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"


def test_a_supervisor_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        Supervision(0)
