"""Helpers shared by the engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def body_of(data: bytes, piece: int = 7000) -> AsyncIterator[bytes]:
    """``data`` as a stream of pieces that do not line up with chunk boundaries."""
    for start in range(0, len(data), piece):
        yield data[start : start + piece]
