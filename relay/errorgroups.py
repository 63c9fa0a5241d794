"""Exception groups at API boundaries.

trio nurseries raise ``ExceptionGroup`` even when a single child failed. Inside relay a
nursery is an implementation detail (the chunker's pipeline, the read path's prefetch),
so their callers should see the one error that happened, as if the code were sequential.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves


@contextmanager
def single_error() -> Iterator[None]:
    """Re-raise a group holding exactly one error as that error (its group as context)."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from group
        raise
