"""Measure what decoded objects hold in memory, to check relay's size estimates."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def decoded_footprint(
    decode: Callable[[bytes], T], encoded: Sequence[bytes]
) -> tuple[list[T], int]:
    """``decode`` each of ``encoded``; return the results and the bytes they hold."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        decoded = [decode(data) for data in encoded]
        return decoded, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
