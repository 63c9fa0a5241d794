"""relay's figures in Prometheus's text format (the ``prometheus-client`` library).

Two kinds of figures, kept apart so the hot path pays only for what must be counted as it
happens:

- *Events*, counted as they happen: each finished request (by S3 operation and status,
  with its duration and bytes) and each blob store call (by backend, operation and
  outcome, with its latency; ``InstrumentedStore`` in ``relay.observe.store``).
- *Readings*, taken only when Prometheus scrapes: connections open, requests in flight,
  commit batches, cache hits and misses, upload buffers. The components already keep these
  as plain counters (their ``statistics()``); ``Readings`` is the snapshot the server
  assembles from them, so this module knows none of their types.

Every ``Metrics`` has its own ``CollectorRegistry`` (none is global), so tests and an
embedding program can run several relays in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from relay.observe.requests import RequestRecord
from relay.version import VERSION

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# Counters' "_created" timestamps double the exposition and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds: a 4 KiB PUT takes about a millisecond here, a 1 GiB download several seconds.
REQUEST_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
# A blob put or get: from a staged 4 KiB put (microseconds) to a 1 MiB upstream read.
STORE_BUCKETS: Final = (
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CacheReading:
    hits: int
    misses: int
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class Readings:
    """What the server's components report at scrape time (plain numbers)."""

    open_connections: int = 0
    requests_in_flight: int = 0
    commit_batches: int = 0
    commit_mutations: int = 0
    commit_seconds: float = 0.0
    commit_conflicts: int = 0  # compare-and-swaps lost to another process
    commit_rebases: int = 0  # batches applied again on another process's root
    upload_buffers_in_use: int = 0
    upload_buffers_capacity: int = 0
    upload_spilled_bytes: int = 0  # the pool's budget held by stalled uploads' copies
    upload_spills: int = 0
    upload_evictions: int = 0  # stalled uploads ended (400 RequestTimeout) to make room
    caches: Mapping[str, CacheReading] = field(default_factory=dict)


class _ReadingsCollector(Collector):
    def __init__(self, read: Callable[[], Readings]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        now = self._read()
        info = GaugeMetricFamily("relay_info", "relay's version (always 1)", labels=["version"])
        info.add_metric([VERSION], 1)
        yield info
        yield GaugeMetricFamily(
            "relay_open_connections", "S3 connections open", value=now.open_connections
        )
        yield GaugeMetricFamily(
            "relay_requests_in_flight",
            "S3 requests received and not yet answered",
            value=now.requests_in_flight,
        )
        batches = SummaryMetricFamily(
            "relay_commit_batch_size", "writes committed together in one bucket commit"
        )
        batches.add_metric([], count_value=now.commit_batches, sum_value=now.commit_mutations)
        yield batches
        seconds = SummaryMetricFamily(
            "relay_commit_duration_seconds",
            "time from a batch's commit start (CAR put, store sync, registry swap) to its end",
        )
        seconds.add_metric([], count_value=now.commit_batches, sum_value=now.commit_seconds)
        yield seconds
        yield CounterMetricFamily(
            "relay_commit_conflicts",
            "bucket commits that lost the registry's compare-and-swap to another process"
            " (then committed under the bucket's commit lock)",
            value=now.commit_conflicts,
        )
        yield CounterMetricFamily(
            "relay_commit_rebases",
            "batches applied again on a bucket root another process committed",
            value=now.commit_rebases,
        )
        yield GaugeMetricFamily(
            "relay_upload_buffers_in_use",
            "chunk buffers held by uploads (the shared upload memory pool)",
            value=now.upload_buffers_in_use,
        )
        yield GaugeMetricFamily(
            "relay_upload_buffers_capacity",
            "chunk buffers the upload memory pool may hold",
            value=now.upload_buffers_capacity,
        )
        yield GaugeMetricFamily(
            "relay_upload_spilled_bytes",
            "upload memory held by stalled uploads' partial chunks (moved out of pooled buffers)",
            value=now.upload_spilled_bytes,
        )
        yield CounterMetricFamily(
            "relay_upload_spills",
            "times a stalled upload's partial chunk was moved out of a pooled buffer",
            value=now.upload_spills,
        )
        yield CounterMetricFamily(
            "relay_upload_evictions",
            "stalled uploads ended (400 RequestTimeout) to give moving ones memory",
            value=now.upload_evictions,
        )
        hits = CounterMetricFamily(
            "relay_cache_hits", "lookups answered from memory", labels=["cache"]
        )
        misses = CounterMetricFamily(
            "relay_cache_misses", "lookups that had to read the store", labels=["cache"]
        )
        memory = GaugeMetricFamily(
            "relay_cache_memory_bytes", "estimated bytes a cache holds", labels=["cache"]
        )
        for name, cache in sorted(now.caches.items()):
            hits.add_metric([name], cache.hits)
            misses.add_metric([name], cache.misses)
            memory.add_metric([name], cache.memory_bytes)
        yield hits
        yield misses
        yield memory


class Metrics:
    """The figures of one relay server."""

    def __init__(self, read: Callable[[], Readings] = Readings) -> None:
        # What the components report at scrape time; the server sets it once they exist.
        self.read = read
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "relay_requests",
            "S3 requests answered, by operation and HTTP status",
            ["operation", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "relay_request_duration_seconds",
            "from a request's head to the last byte of its answer, by operation",
            ["operation"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.received_bytes = Counter(
            "relay_received_bytes",
            "request body bytes received, by operation",
            ["operation"],
            registry=self.registry,
        )
        self.sent_bytes = Counter(
            "relay_sent_bytes",
            "response body bytes sent, by operation",
            ["operation"],
            registry=self.registry,
        )
        self.store_operations = Counter(
            "relay_blob_store_operations",
            "blob store calls, by backend, operation and outcome (ok or the error's kind)",
            ["backend", "operation", "outcome"],
            registry=self.registry,
        )
        self.store_seconds = Histogram(
            "relay_blob_store_operation_duration_seconds",
            "blob store call latency, by backend and operation",
            ["backend", "operation"],
            buckets=STORE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ReadingsCollector(lambda: self.read()))

    def observe_request(self, record: RequestRecord) -> None:
        operation = record.operation
        self.requests.labels(operation, str(record.status)).inc()
        self.request_seconds.labels(operation).observe(record.duration_seconds)
        if record.bytes_in:
            self.received_bytes.labels(operation).inc(record.bytes_in)
        if record.bytes_out:
            self.sent_bytes.labels(operation).inc(record.bytes_out)

    def observe_store(self, backend: str, operation: str, seconds: float, outcome: str) -> None:
        self.store_operations.labels(backend, operation, outcome).inc()
        self.store_seconds.labels(backend, operation).observe(seconds)

    def exposition(self) -> bytes:
        """The text Prometheus scrapes."""
        return generate_latest(self.registry)
