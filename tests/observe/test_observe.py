"""The request log's lines, the metrics' exposition and the admin endpoints, without a
server (the end-to-end tests drive them through a running relay)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from relay.http import Exchange, Request, Response
from relay.ipld import multihash
from relay.lru import LruCache
from relay.observe import RequestLog, configure_logging, format_json, format_text, record_of
from relay.observe.admin import AdminApp, ReadinessCheck
from relay.observe.metrics import CacheReading, Metrics, Readings
from relay.observe.store import InstrumentedStore
from relay.store import BlobNotFound, MemoryBlobStore


def exchange(**notes: str) -> Exchange:
    return Exchange(
        started=1_765_000_000.25,
        remote="127.0.0.1:5555",
        method="PUT",
        user_agent="aws-cli/2.15 md/x",
        status=200,
        bytes_in=4096,
        bytes_out=0,
        duration_seconds=0.0123,
        notes=notes,
    )


def samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_text_line_carries_every_field_and_quotes_what_could_split_it() -> None:
    record = record_of(
        exchange(
            request_id="ABC123",
            access_key="AKID",
            operation="PutObject",
            bucket="photos",
            key='holiday 2024/"cat".jpg',
        )
    )
    line = format_text(record)
    assert line.startswith("2025-12-06T05:46:40.250Z ABC123 127.0.0.1:5555 AKID PutObject ")
    assert '"photos/holiday 2024/\\"cat\\".jpg" 200 - in=4096 out=0 12.3ms' in line
    assert line.endswith('ua="aws-cli/2.15 md/x"')
    assert "\n" not in format_text(record_of(exchange(key="a\nb", bucket="b")))


def test_a_json_line_is_one_object_with_the_same_fields() -> None:
    record = record_of(exchange(request_id="R1", operation="GetObject", error="NoSuchKey"))
    parsed = json.loads(format_json(record))
    assert parsed["request_id"] == "R1"
    assert parsed["operation"] == "GetObject"
    assert parsed["error"] == "NoSuchKey"
    assert parsed["duration_ms"] == 12.3
    assert parsed["time"] == "2025-12-06T05:46:40.250Z"
    assert set(parsed) == {
        "time", "request_id", "remote", "access_key", "operation", "bucket", "key", "status",
        "error", "reason", "bytes_in", "bytes_out", "duration_ms", "user_agent",
    }  # fmt: skip


def test_a_line_names_the_worker_that_served_it_when_several_serve() -> None:
    record = record_of(exchange(request_id="R9", reason="slow body"))
    assert format_text(record, worker="2").endswith('reason="slow body" worker=2')
    assert json.loads(format_json(record, worker="2"))["worker"] == "2"
    assert "worker" not in format_text(record)  # one process: no worker field
    assert "worker" not in json.loads(format_json(record))


def test_workers_expositions_merge_into_one_with_a_worker_label() -> None:
    from relay.observe.workers import merge_expositions

    one, two = Metrics(), Metrics()
    one.observe_request(record_of(exchange(operation="PutObject")))
    for _ in range(3):
        two.observe_request(record_of(exchange(operation="PutObject")))
    merged = samples(
        merge_expositions({"1": one.exposition().decode(), "2": two.exposition().decode()})
    )
    put = (("operation", "PutObject"), ("status", "200"))
    assert merged[("relay_requests_total", (*put, ("worker", "1")))] == 1
    assert merged[("relay_requests_total", (*put, ("worker", "2")))] == 3


async def test_the_supervisors_admin_is_ready_only_when_every_worker_is() -> None:
    from relay.observe.workers import WorkersAdminApp

    ports: dict[str, int | None] = {"1": 9001, "2": None}
    answers = {9001: (200, b"ready\n"), 9002: (503, b"not ready: registry: locked\n")}

    async def ask(port: int, path: str) -> tuple[int, bytes]:
        await trio.lowlevel.checkpoint()
        assert path == "/health/ready"
        return answers[port]

    app = WorkersAdminApp(lambda: ports, ask)

    async def status_and_text() -> tuple[int, str]:
        response = await app.handle(admin_request("/health/ready"), None)  # type: ignore[arg-type]
        assert isinstance(response.body, bytes)
        return response.status, response.body.decode()

    assert await status_and_text() == (503, "not ready: worker 2: starting\n")
    ports["2"] = 9002
    assert await status_and_text() == (503, "not ready: worker 2: not ready: registry: locked\n")
    answers[9002] = (200, b"ready\n")
    assert await status_and_text() == (200, "ready: 2 workers\n")


def test_an_exchange_the_http_layer_refused_has_no_operation_but_a_reason() -> None:
    refused = Exchange(1.0, "h:1", "GET", "", 400, 0, 0, 0.001, {}, "malformed request head")
    record = record_of(refused)
    assert record.operation == "-"
    assert record.reason == "malformed request head"
    assert format_text(record).endswith('reason="malformed request head"')


def test_log_level_and_format_are_applied_to_relay_loggers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        configure_logging("info", "json")
        RequestLog("json").write(record_of(exchange(request_id="R2")))
        logging.getLogger("relay.http").warning("listener %s paused", "x")
        configure_logging("warning", "text")
        RequestLog("text").write(record_of(exchange(request_id="R3")))
    finally:
        logging.getLogger("relay").handlers.clear()
        logging.getLogger("relay").propagate = True
    lines = capsys.readouterr().err.splitlines()
    assert json.loads(lines[0])["request_id"] == "R2"
    assert json.loads(lines[1]) | {"time": "t"} == {
        "time": "t", "level": "warning", "logger": "relay.http", "message": "listener x paused"
    }  # fmt: skip
    assert len(lines) == 2  # at "warning" the request line is not written
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "text")


def test_request_counters_move_by_exactly_the_requests_observed() -> None:
    metrics = Metrics()
    record = record_of(exchange(operation="GetObject"))
    for status in (200, 200, 404):
        metrics.observe_request(dataclasses.replace(record, status=status))
    found = samples(metrics.exposition())
    assert found[("relay_requests_total", (("operation", "GetObject"), ("status", "200")))] == 2
    assert found[("relay_requests_total", (("operation", "GetObject"), ("status", "404")))] == 1
    assert found[("relay_request_duration_seconds_count", (("operation", "GetObject"),))] == 3
    assert found[("relay_received_bytes_total", (("operation", "GetObject"),))] == 3 * 4096


def test_readings_are_taken_at_scrape_time() -> None:
    current = {"connections": 3}

    def read() -> Readings:
        return Readings(
            open_connections=current["connections"],
            commit_batches=4,
            commit_mutations=10,
            commit_seconds=0.5,
            commit_conflicts=3,
            commit_rebases=5,
            upload_spilled_bytes=4096,
            upload_evictions=2,
            caches={"manifest": CacheReading(hits=7, misses=2, memory_bytes=1000)},
        )

    metrics = Metrics(read)
    assert samples(metrics.exposition())[("relay_open_connections", ())] == 3
    current["connections"] = 5
    found = samples(metrics.exposition())
    assert found[("relay_open_connections", ())] == 5
    assert found[("relay_commit_batch_size_count", ())] == 4
    assert found[("relay_commit_batch_size_sum", ())] == 10
    assert found[("relay_commit_conflicts_total", ())] == 3
    assert found[("relay_commit_rebases_total", ())] == 5
    assert found[("relay_cache_hits_total", (("cache", "manifest"),))] == 7
    assert found[("relay_cache_misses_total", (("cache", "manifest"),))] == 2
    assert found[("relay_upload_spilled_bytes", ())] == 4096
    assert found[("relay_upload_evictions_total", ())] == 2


def test_an_lru_counts_hits_and_misses() -> None:
    cache: LruCache[str, bytes] = LruCache(100, len)
    cache.put("a", b"x")
    assert cache.get("a") == b"x"
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (1, 1)


async def test_the_instrumented_store_counts_outcomes_and_passes_everything_through() -> None:
    metrics = Metrics()
    store = InstrumentedStore(MemoryBlobStore(), "memory", metrics)
    data = b"hello"
    mh = multihash.sha2_256(data)
    await store.put(mh, data)
    assert await store.get(mh) == data
    with pytest.raises(BlobNotFound):
        await store.get(multihash.sha2_256(b"absent"))
    found = samples(metrics.exposition())
    ops = "relay_blob_store_operations_total"
    assert found[(ops, (("backend", "memory"), ("operation", "put"), ("outcome", "ok")))] == 1
    assert found[(ops, (("backend", "memory"), ("operation", "get"), ("outcome", "ok")))] == 1
    assert (
        found[(ops, (("backend", "memory"), ("operation", "get"), ("outcome", "BlobNotFound")))]
        == 1
    )
    assert store.blobs[mh] == data  # an attribute of the wrapped store


def admin_request(path: str, method: str = "GET") -> Request:
    return Request(method, path, path, "", (("host", "admin"),), "1.1", None)


async def test_health_ready_names_what_is_not_ready() -> None:
    up = {"store": True}

    async def registry_ok() -> None:
        await trio.lowlevel.checkpoint()

    async def store_check() -> None:
        await trio.lowlevel.checkpoint()
        if not up["store"]:
            raise ConnectionError("cannot connect to 127.0.0.1:9")

    app = AdminApp(
        Metrics(),
        [ReadinessCheck("registry", registry_ok), ReadinessCheck("blob store", store_check)],
    )

    async def get(path: str) -> Response:
        return await app.handle(admin_request(path), None)  # type: ignore[arg-type]

    assert (await get("/health/live")).status == 200
    assert (await get("/health/ready")).status == 200
    up["store"] = False
    not_ready = await get("/health/ready")
    assert not_ready.status == 503
    assert not_ready.body == b"not ready: blob store: cannot connect to 127.0.0.1:9\n"
    up["store"] = True
    assert (await get("/health/ready")).status == 200
    metrics = await get("/metrics")
    assert metrics.status == 200
    assert isinstance(metrics.body, bytes)
    assert b"relay_info" in metrics.body
    assert (await get("/nope")).status == 404
    assert (await app.handle(admin_request("/metrics", "POST"), None)).status == 405  # type: ignore[arg-type]


async def test_a_readiness_check_that_hangs_is_not_ready_after_its_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def hangs() -> None:
        await trio.sleep_forever()

    app = AdminApp(Metrics(), [ReadinessCheck("registry", hangs)])
    answer = await app.handle(admin_request("/health/ready"), None)  # type: ignore[arg-type]
    assert answer.status == 503
    assert answer.body == b"not ready: registry: no answer within 5 s\n"


def test_the_dashboard_queries_only_metrics_relay_exports() -> None:
    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "ops" / "grafana-dashboard.json").read_text()
    )
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\brelay_[a-z_]+", target["expr"])
    }
    metrics = Metrics(lambda: Readings(caches={"manifest": CacheReading(1, 1, 1)}))
    # Labelled series exist once observed: one request that received and sent bytes.
    metrics.observe_request(
        dataclasses.replace(record_of(exchange(operation="GetObject")), bytes_out=10)
    )
    metrics.observe_store("disk", "put", 0.001, "ok")
    exported = {sample_name for sample_name, _ in samples(metrics.exposition())}
    assert queried, "the dashboard has queries"
    assert queried <= exported, sorted(queried - exported)
