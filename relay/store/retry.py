"""What the remote blob stores (``s3``, ``piri``) share besides ``httpclient``: the backoff
between attempts and hashing big blobs off the event loop.

Backoff is exponential with "equal jitter": before attempt ``n`` (0-based, ``n >= 1``) the
pause is uniform in ``[c/2, c]`` where ``c = min(max_seconds, base_seconds * 2**n)``. The
floor keeps retries from hammering an upstream that is struggling; the jitter keeps
many relay tasks that failed together from retrying together.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final, TypeVar

import trio

T = TypeVar("T")

# Below this, hashing in place is cheaper than a worker-thread hop.
THREAD_HASH_THRESHOLD: Final = 64 << 10


def backoff_seconds(attempt: int, base_seconds: float, max_seconds: float) -> float:
    """The pause before ``attempt`` (1 for the first retry); see the module docstring."""
    ceiling: float = min(max_seconds, base_seconds * 2.0**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


async def pause_before_retry(attempt: int, base_seconds: float, max_seconds: float) -> None:
    await trio.sleep(backoff_seconds(attempt, base_seconds, max_seconds))


async def in_thread_if_large(work: Callable[[], T], size: int) -> T:
    """Run ``work`` (hashing ``size`` bytes) in a worker thread when that pays off."""
    if size < THREAD_HASH_THRESHOLD:
        await trio.lowlevel.checkpoint()
        return work()
    return await trio.to_thread.run_sync(work)
