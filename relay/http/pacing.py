"""The minimum transfer rate of a request body, kept as a budget of waiting time.

A stall timer that restarts on every byte lets a client hold an upload open forever with
one byte per interval. Instead a body must keep up an average rate: each wait for body
bytes spends the body's *credit* (seconds), and each byte received earns
``1 / min_bytes_per_second`` seconds of it, up to ``max_credit_seconds``. The next read
may wait as long as the credit lasts; when it runs out the body is too slow.

So a body arriving at ``min_bytes_per_second`` or faster never runs out, a body that stops
gets ``max_credit_seconds`` (the stall timeout: what a fast body banks for a pause), and a
body at a fraction ``f`` of the minimum rate runs out within
``max_credit_seconds / (1 - f)``. Only time spent waiting for the client counts: while the
server does not read (its upload pipeline is full) the client is not to blame.

Pure: the caller measures the waits and applies the allowance as a deadline.
"""

from __future__ import annotations


class BodyPace:
    __slots__ = ("_credit_seconds", "_max_credit_seconds", "_min_bytes_per_second")

    def __init__(self, min_bytes_per_second: float, max_credit_seconds: float) -> None:
        if not (min_bytes_per_second > 0 and max_credit_seconds > 0):
            raise ValueError("the rate and the credit must be positive")
        self._min_bytes_per_second = min_bytes_per_second
        self._max_credit_seconds = max_credit_seconds
        self._credit_seconds = max_credit_seconds

    def allowance_seconds(self) -> float:
        """How long the next wait for body bytes may last."""
        return max(0.0, self._credit_seconds)

    def record(self, waited_seconds: float, received_bytes: int) -> None:
        """A wait of `waited_seconds` that ended with `received_bytes` bytes."""
        credit = self._credit_seconds - waited_seconds
        credit += received_bytes / self._min_bytes_per_second
        self._credit_seconds = min(self._max_credit_seconds, credit)
