"""What the supervisor of ``relay serve --workers N`` decides, with no process in sight.

``relay.workers`` runs the processes; every decision it makes is asked of a
``Supervision`` here, a plain state machine fed with what happened (a worker became
ready, a worker exited after so long, a stop signal arrived) that answers with what to do
next. Keeping it free of processes, signals and clocks lets the tests walk it through
crash loops and double signals in microseconds.

The rules:

- **Start.** Every worker must become ready once. A worker that dies before its first
  readiness at start means the configuration or the data directory is unusable (a bad
  setting, a registry from a newer relay, no permission): restarting it would fail the
  same way, so the supervisor stops the others and exits ``EXIT_COULD_NOT_START``.
- **Restart.** Once serving, a worker that dies (crash, OOM kill, ``kill -9``) is
  replaced in the same slot after a backoff: ``RESTART_DELAY_MIN_SECONDS`` for a worker
  that had served at least ``STABLE_AFTER_SECONDS``, doubling for each quick death in a
  row, up to ``RESTART_DELAY_MAX_SECONDS``. A crash loop thus costs one start every
  half minute, not a spinning core, and a one-off crash is replaced at once.
- **Stop.** The first SIGINT or SIGTERM stops gracefully: no more restarts, each worker
  gets SIGTERM (it stops accepting and finishes its requests in flight within its
  shutdown grace). A second signal kills every worker at once.
- **Exit code.** ``EXIT_STOPPED`` (0) when a stop was asked and every worker finished
  cleanly; ``EXIT_COULD_NOT_START`` (1) as above; ``EXIT_STOPPED_AT_ONCE`` (3) when a
  second signal cut requests short, or a worker did not exit cleanly while stopping.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass, field
from typing import Final

# A worker replaced this soon after a crash that followed a long life: a one-off crash
# costs clients a moment, not a backoff.
RESTART_DELAY_MIN_SECONDS: Final = 0.1
# The slowest restart rate in a crash loop: a log line and a start every half minute.
RESTART_DELAY_MAX_SECONDS: Final = 30.0
# A worker that served this long before dying was healthy: its replacement starts at the
# minimum delay again.
STABLE_AFTER_SECONDS: Final = 30.0

EXIT_STOPPED: Final = 0
EXIT_COULD_NOT_START: Final = 1
EXIT_STOPPED_AT_ONCE: Final = 3


class Phase(enum.Enum):
    STARTING = "starting"  # not every worker has been ready yet
    SERVING = "serving"
    STOPPING = "stopping"  # a first signal: workers finish their requests
    STOPPING_AT_ONCE = "stopping at once"  # a second signal, or a start that failed


@dataclass(frozen=True, slots=True)
class Restart:
    """Start a new worker in ``slot`` after ``delay_seconds``."""

    slot: int
    delay_seconds: float


@dataclass(frozen=True, slots=True)
class StopAll:
    """Signal every worker: ``signum`` (SIGTERM: finish and stop; SIGKILL: now)."""

    signum: int


@dataclass(frozen=True, slots=True)
class Nothing:
    """Nothing to do (a worker that exited while stopping)."""


Action = Restart | StopAll | Nothing


def describe_exit(returncode: int) -> str:
    """A worker's exit as a person reads it (``Popen.returncode``: -N is signal N)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


@dataclass(slots=True)
class Supervision:
    """The supervisor's state: its phase, which slots have been ready, each slot's backoff."""

    workers: int
    phase: Phase = Phase.STARTING
    ready: set[int] = field(default_factory=set)
    delays: dict[int, float] = field(default_factory=dict)
    signals: int = 0
    start_failed: bool = False
    unclean_exits: int = 0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("a supervisor needs at least one worker")

    def worker_ready(self, slot: int) -> bool:
        """``slot``'s worker serves; True when this makes every worker ready at start."""
        self.ready.add(slot)
        if self.phase is Phase.STARTING and len(self.ready) == self.workers:
            self.phase = Phase.SERVING
            return True
        return False

    def worker_exited(self, slot: int, returncode: int, served_seconds: float | None) -> Action:
        """``slot``'s worker exited; ``served_seconds`` is how long it had served (None: it
        never became ready)."""
        if self.stopping:
            if returncode != 0:
                self.unclean_exits += 1
            return Nothing()
        if self.phase is Phase.STARTING and slot not in self.ready:
            # It never served: the configuration or the data cannot be served.
            self.phase = Phase.STOPPING_AT_ONCE
            self.start_failed = True
            return StopAll(signal.SIGKILL)
        if served_seconds is not None and served_seconds >= STABLE_AFTER_SECONDS:
            delay = RESTART_DELAY_MIN_SECONDS
        else:
            previous = self.delays.get(slot, 0.0)
            delay = min(RESTART_DELAY_MAX_SECONDS, max(RESTART_DELAY_MIN_SECONDS, previous * 2))
        self.delays[slot] = delay
        return Restart(slot, delay)

    def stop_signal(self) -> Action:
        """SIGINT or SIGTERM arrived: the first stops gracefully, the next at once."""
        self.signals += 1
        if self.stopping:
            self.phase = Phase.STOPPING_AT_ONCE
            return StopAll(signal.SIGKILL)
        self.phase = Phase.STOPPING
        return StopAll(signal.SIGTERM)

    @property
    def stopping(self) -> bool:
        return self.phase in (Phase.STOPPING, Phase.STOPPING_AT_ONCE)

    def exit_code(self) -> int:
        """What the supervisor exits with, once every worker is gone."""
        if self.start_failed:
            return EXIT_COULD_NOT_START
        if self.phase is Phase.STOPPING_AT_ONCE or self.unclean_exits:
            return EXIT_STOPPED_AT_ONCE
        return EXIT_STOPPED
