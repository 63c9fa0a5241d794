"""A least-recently-used map bounded by the estimated bytes its values hold.

Each value is weighed once, when it goes in (``weigh``), and its weight kept beside it,
so evicting never weighs again. The newest value always stays, even one heavier than the
whole budget: a cache that cannot hold what it was just given would make every caller
that puts-then-gets fetch again forever.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    def __init__(self, capacity_bytes: int, weigh: Callable[[V], int]) -> None:
        self.capacity_bytes = capacity_bytes
        self.memory_bytes = 0
        self.evictions = 0
        # Lookups that found their value, and those that did not (the metrics' hit ratio).
        self.hits = 0
        self.misses = 0
        self._weigh = weigh
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()  # value, its weight

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.memory_bytes -= old[1]
        weight = self._weigh(value)
        self._items[key] = (value, weight)
        self.memory_bytes += weight
        while self.memory_bytes > self.capacity_bytes and len(self._items) > 1:
            _, (_, evicted_weight) = self._items.popitem(last=False)
            self.memory_bytes -= evicted_weight
            self.evictions += 1

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
