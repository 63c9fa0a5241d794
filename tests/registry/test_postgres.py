"""What only the PostgreSQL registry has to get right: hosts racing, migrations at once,
the database going away and coming back, and its password staying secret.

A real server (``tests/pg.py``): the session's for the races and migrations, one of the
test's own for the faults (it is stopped and started)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import psycopg
import pytest
import trio
from pg import PostgresServer, postgres_or_fail

from relay.ipld.cid import CID
from relay.ipld.multihash import sha2_256
from relay.registry import BlockLocation, CommitConflict, PartRecord, RegistryError, UploadMissing
from relay.registry.base import RegistryUnavailable
from relay.registry.config import RegistryConfig
from relay.registry.postgres import SCHEMA_VERSION, PostgresRegistry, open_postgres_registry

# Short bounds, so that a stopped server is reported in seconds.
FAST_FAILING = {"connect_timeout_seconds": 2.0, "network_timeout_seconds": 3.0}
# A restarted server accepts connections within moments; on a loaded machine, allow more.
RECOVERY_TIMEOUT_SECONDS = 60.0


def root(label: str) -> CID:
    return CID.dag_cbor_sha256(hashlib.sha256(label.encode()).digest())


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    server = postgres_or_fail()
    try:
        yield server
    finally:
        server.close()


async def commit_at(registry: PostgresRegistry, version: int, label: str) -> int:
    record = await registry.commit(
        "b",
        expected_version=version,
        root=root(label),
        car=sha2_256(label.encode()),
        locations=[BlockLocation(sha2_256(b"block " + label.encode()), sha2_256(b"car"), 0, 1)],
        puts=1,
        deletes=0,
    )
    return record.version


async def test_two_hosts_racing_one_bucket_have_exactly_one_winner_each_version(
    postgres_server: PostgresServer,
) -> None:
    config = RegistryConfig(url=postgres_server.new_database())
    rounds = 25
    async with open_postgres_registry(config) as host_a, open_postgres_registry(config) as host_b:
        await host_a.create_bucket("b", "alice", root("v0"))
        winners: dict[int, list[str]] = {}
        for version in range(rounds):
            outcomes: list[str] = []

            async def attempt(
                host: PostgresRegistry,
                label: str,
                version: int = version,
                outcomes: list[str] = outcomes,
            ) -> None:
                try:
                    assert await commit_at(host, version, label) == version + 1
                    outcomes.append(label)
                except CommitConflict:
                    outcomes.append("conflict")

            async with trio.open_nursery() as nursery:
                for racer in range(3):  # three writers a host, six in all
                    nursery.start_soon(attempt, host_a, f"a{racer}-{version}")
                    nursery.start_soon(attempt, host_b, f"b{racer}-{version}")
            winners[version] = [label for label in outcomes if label != "conflict"]
            assert len(winners[version]) == 1, outcomes
            assert outcomes.count("conflict") == 5
        log = await host_b.commit_log("b", newest_first=False)
    # One line of history: every version once, each the root its winner committed.
    assert [c.version for c in log] == list(range(rounds + 1))
    assert [c.root for c in log[1:]] == [root(winners[v][0]) for v in range(rounds)]


async def test_hosts_opening_a_fresh_database_at_once_apply_each_migration_once(
    postgres_server: PostgresServer,
) -> None:
    config = RegistryConfig(url=postgres_server.new_database())
    opened: list[PostgresRegistry] = []

    async def open_one() -> None:
        async with open_postgres_registry(config) as registry:
            opened.append(registry)
            await registry.ping()

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(open_one)
    assert len(opened) == 4
    with psycopg.connect(config.url) as db:
        rows = db.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [version for (version,) in rows] == list(range(1, SCHEMA_VERSION + 1))


async def test_a_database_from_a_newer_relay_is_refused(postgres_server: PostgresServer) -> None:
    config = RegistryConfig(url=postgres_server.new_database())
    async with open_postgres_registry(config):
        pass
    with psycopg.connect(config.url, autocommit=True) as db:
        db.execute("INSERT INTO schema_migrations VALUES (%s, 0)", (SCHEMA_VERSION + 1,))
    with pytest.raises(RegistryError, match="upgrade relay"):
        async with open_postgres_registry(config):
            pass


@pytest.mark.slow  # each refused call waits out connect_timeout_seconds; then a restart
async def test_a_stopped_database_is_unavailable_and_service_resumes_when_it_is_back(
    own_server: PostgresServer,
) -> None:
    config = RegistryConfig(url=own_server.new_database(), **FAST_FAILING)
    async with open_postgres_registry(config) as registry:
        await registry.create_bucket("b", "alice", root("v0"))
        assert await commit_at(registry, 0, "acknowledged") == 1
        await trio.to_thread.run_sync(own_server.stop)

        for attempt in (registry.get_bucket("b"), commit_at(registry, 1, "refused")):
            with pytest.raises(RegistryUnavailable) as caught:
                await attempt
            assert own_server.password not in str(caught.value)
            assert "***" in str(caught.value)  # the URL, redacted, says which registry

        await trio.to_thread.run_sync(own_server.start)
        # No reopening: the pool replaces its broken connections by itself.
        with trio.fail_after(RECOVERY_TIMEOUT_SECONDS):
            while True:
                try:
                    bucket = await registry.get_bucket("b")
                    break
                except RegistryUnavailable:
                    await trio.sleep(0.2)
        assert bucket is not None
        assert (bucket.version, bucket.root) == (1, root("acknowledged"))
        assert await commit_at(registry, 1, "after") == 2
        assert [c.version for c in await registry.commit_log("b")] == [2, 1, 0]


async def test_a_restart_between_requests_costs_no_request_an_error(
    own_server: PostgresServer,
) -> None:
    config = RegistryConfig(url=own_server.new_database(), **FAST_FAILING)
    async with open_postgres_registry(config) as registry:
        await registry.create_bucket("b", "alice", root("v0"))
        await trio.to_thread.run_sync(own_server.restart)
        # The pooled connection died with the old server; it is checked and replaced.
        assert await commit_at(registry, 0, "after restart") == 1


async def test_the_password_is_in_no_error_log_line_or_repr(
    own_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = own_server.url().replace(own_server.password, "wrong-Pa55word-xyz")
    config = RegistryConfig(url=wrong, **FAST_FAILING)
    with pytest.raises(RegistryUnavailable) as caught:
        async with open_postgres_registry(config):
            pass
    assert "password authentication failed" in str(caught.value)
    good = RegistryConfig(url=own_server.url(), **FAST_FAILING)
    async with open_postgres_registry(good) as registry:
        shown = [repr(registry), repr(good), str(good)]
        await trio.to_thread.run_sync(own_server.stop)
        with pytest.raises(RegistryUnavailable) as down:
            await registry.list_buckets()
        await trio.to_thread.run_sync(own_server.start)
    texts = [str(caught.value), str(down.value), *shown, caplog.text]
    for secret in ("wrong-Pa55word-xyz", own_server.password):
        assert not [text for text in texts if secret in text]


async def test_a_malformed_url_is_refused_in_one_line_without_its_password() -> None:
    secret = "Pa55-in-a-bad-url"
    config = RegistryConfig(url=f"postgresql://relay:{secret}@127.0.0.1:notaport/db")
    with pytest.raises(RegistryError) as caught:
        async with open_postgres_registry(config):
            pass
    assert "port" in str(caught.value)
    assert secret not in str(caught.value)


async def test_parts_written_while_another_host_aborts_leave_no_orphans(
    postgres_server: PostgresServer,
) -> None:
    config = RegistryConfig(url=postgres_server.new_database())
    async with open_postgres_registry(config) as host_a, open_postgres_registry(config) as host_b:
        for round_number in range(30):
            upload_id = f"u{round_number}"
            await host_a.create_upload(upload_id, "b", "k", "alice", b"")

            async def put_parts(upload_id: str = upload_id) -> None:
                for number in range(1, 6):
                    try:
                        await host_a.put_part(PartRecord(upload_id, number, 1, "e", 0, b"part"))
                    except UploadMissing:
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(put_parts)
                nursery.start_soon(host_b.delete_upload, upload_id)
    with psycopg.connect(config.url) as db:
        orphans = db.execute(
            "SELECT count(*) FROM multipart_parts p WHERE NOT EXISTS"
            " (SELECT 1 FROM multipart_uploads u WHERE u.upload_id = p.upload_id)"
        ).fetchone()
    assert orphans == (0,)
