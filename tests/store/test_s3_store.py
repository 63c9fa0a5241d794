"""The ``s3`` blob store against a real S3 server (moto, on loopback) and against a small
scripted upstream for the failures moto will not produce on demand (5xx, hangs).

The BlobStore contract itself runs for s3 in test_store_contract.py (``any_store``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import h11
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto_upstream import MotoServer

from relay.ipld.base import b58encode
from relay.store.base import BlobNotFound, CorruptBlob, StoreError
from relay.store.s3 import S3BlobStore, S3StoreConfig, open_s3_store


def sha256_multihash(data: bytes) -> bytes:
    return b"\x12\x20" + hashlib.sha256(data).digest()


def expected_key(data: bytes, prefix: str = "") -> str:
    # Written out from the layout's definition: z + base58btc(multihash), twice.
    name = "z" + b58encode(sha256_multihash(data))
    return f"{prefix}{name}/{name}.blob"


BLOB = os.urandom(300_000)
BLOB_MH = sha256_multihash(BLOB)


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    return moto.new_bucket()


@asynccontextmanager
async def s3_store(moto: MotoServer, bucket: str, **settings: object) -> AsyncIterator[S3BlobStore]:
    async with open_s3_store(moto.store_config(bucket, **settings)) as store:
        yield store


async def test_blobs_are_objects_named_by_their_z_multihash(moto: MotoServer, bucket: str) -> None:
    async with s3_store(moto, bucket, prefix="relay/") as store:
        await store.put(BLOB_MH, BLOB)
    client = moto.client()
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [expected_key(BLOB, "relay/")]
    assert client.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == BLOB


async def test_each_upload_reports_its_path_style_url_once(moto: MotoServer, bucket: str) -> None:
    stored: list[tuple[bytes, str]] = []

    async def on_stored(mh: bytes, url: str) -> None:
        stored.append((mh, url))

    config = moto.store_config(bucket)
    async with open_s3_store(config, on_stored=on_stored) as store:
        await store.put(BLOB_MH, BLOB)
        await store.put(BLOB_MH, BLOB)  # deduplicated: no second upload, no second claim
    assert stored == [(BLOB_MH, f"{moto.endpoint}/{bucket}/{expected_key(BLOB)}")]


async def test_a_failing_on_stored_fails_the_put_and_the_blob_is_not_known(
    moto: MotoServer, bucket: str
) -> None:
    async def on_stored(mh: bytes, url: str) -> None:
        raise RuntimeError("registry down")

    async with open_s3_store(moto.store_config(bucket), on_stored=on_stored) as store:
        with pytest.raises(RuntimeError, match="registry down"):
            await store.put(BLOB_MH, BLOB)
        with pytest.raises(RuntimeError, match="registry down"):
            await store.put(BLOB_MH, BLOB)  # tried again, not skipped as present
        assert store.statistics().blobs_written == 0


async def test_concurrent_puts_of_one_blob_upload_once(moto: MotoServer, bucket: str) -> None:
    async with s3_store(moto, bucket) as store:
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(store.put, BLOB_MH, BLOB)
        stats = store.statistics()
        assert (stats.blobs_written, stats.blobs_deduplicated) == (1, 4)
        assert store.s3_statistics().requests == 1


async def test_partial_reads_are_range_gets(moto: MotoServer, bucket: str) -> None:
    async with s3_store(moto, bucket) as store:
        await store.put(BLOB_MH, BLOB)
        before = store.s3_statistics().bytes_received
        part = BLOB[123_456:123_556]
        assert await store.get(BLOB_MH, 123_456, 100, expect=sha256_multihash(part)) == part
        # Only the range (plus a response head) crossed the wire, not the 300 kB blob.
        assert store.s3_statistics().bytes_received - before < 2_000


@pytest.fixture(scope="module")
def range_bucket(moto: MotoServer) -> str:
    return moto.new_bucket("ranges")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blob=st.binary(max_size=2000), data=st.data())
async def test_any_range_reads_back_exactly(
    moto: MotoServer, range_bucket: str, blob: bytes, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(blob)))
    end = data.draw(st.integers(start, len(blob)))
    to_end = data.draw(st.booleans()) and end == len(blob)
    part = blob[start:end]
    async with s3_store(moto, range_bucket) as store:
        await store.put(sha256_multihash(blob), blob)
        got = await store.get(
            sha256_multihash(blob),
            start,
            None if to_end else end - start,
            expect=sha256_multihash(part),
        )
    assert got == part


async def test_an_object_altered_at_the_upstream_is_corrupt(moto: MotoServer, bucket: str) -> None:
    async with s3_store(moto, bucket) as store:
        await store.put(BLOB_MH, BLOB)
        tampered = bytearray(BLOB)
        tampered[200_000] ^= 1
        moto.client().put_object(Bucket=bucket, Key=expected_key(BLOB), Body=bytes(tampered))
        with pytest.raises(CorruptBlob):
            await store.get(BLOB_MH)
        part = BLOB[199_990:200_010]
        with pytest.raises(CorruptBlob):
            await store.get(BLOB_MH, 199_990, 20, expect=sha256_multihash(part))
        untouched = BLOB[:1000]  # a range the tampering missed still verifies
        assert await store.get(BLOB_MH, 0, 1000, expect=sha256_multihash(untouched)) == untouched


async def test_a_truncated_object_is_corrupt_not_short(moto: MotoServer, bucket: str) -> None:
    async with s3_store(moto, bucket) as store:
        await store.put(BLOB_MH, BLOB)
        moto.client().put_object(Bucket=bucket, Key=expected_key(BLOB), Body=BLOB[:1000])
        part = BLOB[900:1100]
        with pytest.raises(CorruptBlob):
            await store.get(BLOB_MH, 900, 200, expect=sha256_multihash(part))


async def test_a_wrong_secret_is_a_store_error_with_the_s3_code(
    moto: MotoServer, bucket: str
) -> None:
    config = S3StoreConfig(
        endpoint=moto.endpoint,
        bucket=bucket,
        access_key_id=moto.access_key,
        secret_access_key="not-the-secret-at-all",
    )
    async with open_s3_store(config) as store:
        with pytest.raises(StoreError) as caught:
            await store.put(BLOB_MH, BLOB)
        assert store.s3_statistics().retries == 0  # a 4xx is an answer, not an outage
    message = str(caught.value)
    assert "403" in message
    assert "SignatureDoesNotMatch" in message
    assert "not-the-secret-at-all" not in message
    assert "not-the-secret-at-all" not in repr(config)


async def test_a_missing_bucket_names_its_code(moto: MotoServer) -> None:
    async with s3_store(moto, "no-such-bucket-here") as store:
        with pytest.raises(StoreError, match="404 NoSuchBucket"):
            await store.put(BLOB_MH, BLOB)


async def test_a_missing_blob_is_blob_not_found_for_ranges_too(
    moto: MotoServer, bucket: str
) -> None:
    async with s3_store(moto, bucket) as store:
        with pytest.raises(BlobNotFound):
            await store.get(BLOB_MH, 10, 10, expect=sha256_multihash(BLOB[10:20]))


async def test_an_unreachable_upstream_is_retried_then_a_store_error() -> None:
    with trio.socket.socket() as probe:  # a port with nothing listening
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = S3StoreConfig(
        endpoint=f"http://127.0.0.1:{port}",
        bucket="relay-blobs",
        access_key_id="key",
        secret_access_key="secret",
        max_attempts=3,
        retry_base_seconds=0.01,
    )
    async with open_s3_store(config) as store:
        with trio.fail_after(5):
            with pytest.raises(StoreError, match="after 3 attempts: cannot connect"):
                await store.put(BLOB_MH, BLOB)
        assert store.s3_statistics().retries == 2
        assert store.statistics().blobs_written == 0


# -- a scripted upstream: answers what each test tells it to, over real loopback TCP -------

Script = Callable[[h11.Request, bytes], "trio.Event | tuple[int, bytes]"]


@asynccontextmanager
async def scripted_upstream(script: Script) -> AsyncIterator[tuple[str, list[int]]]:
    """An h11 server on loopback; ``script(request, body)`` gives (status, body) or an
    Event to wait on forever (a hang). Yields the endpoint and the list of connection
    numbers each request arrived on."""
    arrivals: list[int] = []
    connections = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        number = connections
        protocol = h11.Connection(h11.SERVER)
        while True:
            request: h11.Request | None = None
            body = b""
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    protocol.receive_data(data)
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return
            assert request is not None
            arrivals.append(number)
            answer = script(request, body)
            if isinstance(answer, trio.Event):
                await answer.wait()
                return
            status, payload = answer
            headers = [("Content-Length", str(len(payload)))]
            await stream.send_all(protocol.send(h11.Response(status_code=status, headers=headers)))
            await stream.send_all(protocol.send(h11.Data(data=payload)) or b"")
            await stream.send_all(protocol.send(h11.EndOfMessage()) or b"")
            protocol.start_next_cycle()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}", arrivals
        nursery.cancel_scope.cancel()


def scripted_config(endpoint: str, **settings: object) -> S3StoreConfig:
    return S3StoreConfig(
        endpoint=endpoint,
        bucket="relay-blobs",
        access_key_id="key",
        secret_access_key="secret",
        retry_base_seconds=0.01,
        **settings,  # type: ignore[arg-type]
    )


async def test_5xx_answers_are_retried_with_backoff_until_one_succeeds() -> None:
    answers = iter([(503, b"<Error><Code>SlowDown</Code></Error>"), (500, b""), (200, b"")])

    def script(request: h11.Request, body: bytes) -> tuple[int, bytes]:
        assert body == BLOB
        return next(answers)

    async with scripted_upstream(script) as (endpoint, arrivals):
        async with open_s3_store(scripted_config(endpoint)) as store:
            await store.put(BLOB_MH, BLOB)
            assert store.s3_statistics().retries == 2
    assert len(arrivals) == 3


async def test_5xx_until_the_attempts_run_out_names_the_last_answer() -> None:
    def script(request: h11.Request, body: bytes) -> tuple[int, bytes]:
        return 503, b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"

    async with scripted_upstream(script) as (endpoint, arrivals):
        async with open_s3_store(scripted_config(endpoint, max_attempts=4)) as store:
            with pytest.raises(StoreError, match="after 4 attempts: 503 SlowDown: Reduce"):
                await store.get(BLOB_MH)
    assert len(arrivals) == 4


async def test_a_hung_upstream_times_out_each_attempt() -> None:
    never = trio.Event()
    async with scripted_upstream(lambda request, body: never) as (endpoint, arrivals):
        config = scripted_config(endpoint, max_attempts=2, attempt_timeout_seconds=0.2)
        async with open_s3_store(config) as store:
            with trio.fail_after(5):
                with pytest.raises(StoreError, match=r"2 attempts: HEAD took longer than 0\.2 s"):
                    await store.has(BLOB_MH)
        never.set()
    assert len(arrivals) == 2


async def test_sequential_requests_reuse_one_keep_alive_connection() -> None:
    async with scripted_upstream(lambda request, body: (200, b"")) as (endpoint, arrivals):
        async with open_s3_store(scripted_config(endpoint)) as store:
            for _ in range(5):
                assert await store.has(BLOB_MH)
            assert store.s3_statistics().connections_opened == 1
    assert arrivals == [1] * 5


async def test_requests_are_signed_for_the_upstream() -> None:
    seen: list[dict[bytes, bytes]] = []

    def script(request: h11.Request, body: bytes) -> tuple[int, bytes]:
        seen.append(dict(request.headers))
        return 200, b""

    async with scripted_upstream(script) as (endpoint, _):
        async with open_s3_store(scripted_config(endpoint, region="auto")) as store:
            await store.put(BLOB_MH, BLOB)
    (headers,) = seen
    assert headers[b"x-amz-content-sha256"] == hashlib.sha256(BLOB).hexdigest().encode()
    assert headers[b"authorization"].startswith(b"AWS4-HMAC-SHA256 Credential=key/")
    assert b"/auto/s3/aws4_request" in headers[b"authorization"]
    assert b"secret" not in headers[b"authorization"]
