"""Each registry (SQLite and PostgreSQL, see conftest.py): buckets, the compare-and-swap
commit, the commit log, block locations, claims, settings."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
import trio

from relay.ipld.cid import CID
from relay.ipld.multihash import sha2_256
from relay.registry import (
    BlockLocation,
    BucketExists,
    BucketMissing,
    CommitConflict,
    Registry,
)

OpenRegistry = Callable[[], AbstractAsyncContextManager[Registry]]  # see conftest.py


def root(label: str) -> CID:
    return CID.dag_cbor_sha256(hashlib.sha256(label.encode()).digest())


def location(label: str, blob: str = "car", offset: int = 0, length: int = 10) -> BlockLocation:
    return BlockLocation(sha2_256(label.encode()), sha2_256(blob.encode()), offset, length)


async def commit(
    registry: Registry,
    bucket: str,
    expected_version: int,
    new_root: CID,
    locations: list[BlockLocation] | None = None,
) -> int:
    record = await registry.commit(
        bucket,
        expected_version=expected_version,
        root=new_root,
        car=sha2_256(b"car of " + new_root.bytes),
        locations=locations or [],
        puts=1,
        deletes=0,
    )
    return record.version


# -- buckets -----------------------------------------------------------------------------


async def test_created_bucket_reads_back_at_version_zero(registry: Registry) -> None:
    created = await registry.create_bucket("photos", "alice", root("empty"))
    assert (created.name, created.owner, created.root, created.version) == (
        "photos",
        "alice",
        root("empty"),
        0,
    )
    assert await registry.get_bucket("photos") == created
    assert await registry.get_bucket("missing") is None


async def test_buckets_are_listed_by_name(registry: Registry) -> None:
    for name in ("zeta", "alpha", "mid"):
        await registry.create_bucket(name, "alice", root(name))
    assert [bucket.name for bucket in await registry.list_buckets()] == ["alpha", "mid", "zeta"]


async def test_creating_an_existing_bucket_names_its_owner(registry: Registry) -> None:
    await registry.create_bucket("photos", "alice", root("a"))
    with pytest.raises(BucketExists) as caught:
        await registry.create_bucket("photos", "bob", root("b"))
    assert (caught.value.name, caught.value.owner) == ("photos", "alice")
    bucket = await registry.get_bucket("photos")
    assert bucket is not None
    assert (bucket.owner, bucket.root) == ("alice", root("a"))


async def test_deleted_bucket_is_gone_with_its_log_and_can_be_recreated(
    registry: Registry,
) -> None:
    await registry.create_bucket("photos", "alice", root("a"))
    await commit(registry, "photos", 0, root("b"))
    await registry.delete_bucket("photos", expected_version=1)
    assert await registry.get_bucket("photos") is None
    assert await registry.commit_log("photos") == []
    recreated = await registry.create_bucket("photos", "bob", root("c"))
    assert recreated.version == 0
    assert [c.root for c in await registry.commit_log("photos")] == [root("c")]


async def test_delete_at_a_stale_version_conflicts_and_keeps_the_bucket(
    registry: Registry,
) -> None:
    await registry.create_bucket("photos", "alice", root("a"))
    await commit(registry, "photos", 0, root("b"))
    with pytest.raises(CommitConflict):
        await registry.delete_bucket("photos", expected_version=0)
    bucket = await registry.get_bucket("photos")
    assert bucket is not None
    assert bucket.version == 1
    assert len(await registry.commit_log("photos")) == 2


async def test_deleting_a_missing_bucket_says_so(registry: Registry) -> None:
    with pytest.raises(BucketMissing):
        await registry.delete_bucket("nope", expected_version=0)


# -- commits -----------------------------------------------------------------------------


async def test_commit_swaps_the_root_and_bumps_the_version(registry: Registry) -> None:
    await registry.create_bucket("b", "alice", root("v0"))
    assert await commit(registry, "b", 0, root("v1")) == 1
    assert await commit(registry, "b", 1, root("v2")) == 2
    bucket = await registry.get_bucket("b")
    assert bucket is not None
    assert (bucket.root, bucket.version) == (root("v2"), 2)


async def test_stale_commit_conflicts_and_changes_nothing(registry: Registry) -> None:
    await registry.create_bucket("b", "alice", root("v0"))
    await commit(registry, "b", 0, root("v1"), [location("winner")])
    log_before = await registry.commit_log("b")
    with pytest.raises(CommitConflict) as caught:
        await commit(registry, "b", 0, root("loser"), [location("loser-block")])
    assert caught.value.expected_version == 0
    bucket = await registry.get_bucket("b")
    assert bucket is not None
    assert (bucket.root, bucket.version) == (root("v1"), 1)
    assert await registry.commit_log("b") == log_before
    assert await registry.find_block(location("loser-block").block) is None
    assert await registry.find_block(location("winner").block) == location("winner")


async def test_commit_from_the_future_conflicts_too(registry: Registry) -> None:
    await registry.create_bucket("b", "alice", root("v0"))
    with pytest.raises(CommitConflict):
        await commit(registry, "b", 5, root("v6"))


async def test_commit_to_a_missing_bucket_says_so(registry: Registry) -> None:
    with pytest.raises(BucketMissing):
        await commit(registry, "nope", 0, root("x"), [location("orphan")])
    assert await registry.find_block(location("orphan").block) is None


async def test_concurrent_commits_at_one_version_have_one_winner(
    registry: Registry,
) -> None:
    await registry.create_bucket("b", "alice", root("v0"))
    outcomes: list[str] = []

    async def attempt(label: str) -> None:
        try:
            await commit(registry, "b", 0, root(label), [location(label)])
            outcomes.append(label)
        except CommitConflict:
            outcomes.append("conflict")

    async with trio.open_nursery() as nursery:
        for label in ("first", "second", "third"):
            nursery.start_soon(attempt, label)
    winners = [outcome for outcome in outcomes if outcome != "conflict"]
    assert len(winners) == 1
    assert outcomes.count("conflict") == 2
    bucket = await registry.get_bucket("b")
    assert bucket is not None
    assert (bucket.root, bucket.version) == (root(winners[0]), 1)
    found = await registry.find_blocks(
        location(label).block for label in ("first", "second", "third")
    )
    assert list(found) == [location(winners[0]).block]


async def test_commit_log_lists_every_root_in_order(registry: Registry) -> None:
    await registry.create_bucket("b", "alice", root("v0"))
    for version in range(1, 6):
        await commit(registry, "b", version - 1, root(f"v{version}"))
    await registry.create_bucket("other", "alice", root("elsewhere"))
    newest = await registry.commit_log("b")
    assert [(c.version, c.root) for c in newest] == [(v, root(f"v{v}")) for v in range(5, -1, -1)]
    assert {c.bucket for c in newest} == {"b"}
    assert newest[-1].car is None  # the creation
    assert newest[0].car == sha2_256(b"car of " + root("v5").bytes)
    oldest = await registry.commit_log("b", newest_first=False, limit=2)
    assert [c.version for c in oldest] == [0, 1]
    assert [c.version for c in await registry.commit_log("b", limit=3)] == [5, 4, 3]
    times = [c.time_ms for c in reversed(newest)]
    assert times == sorted(times)


async def test_root_at_answers_each_version(registry: Registry) -> None:
    await registry.create_bucket("b", "alice", root("v0"))
    for version in range(1, 4):
        await commit(registry, "b", version - 1, root(f"v{version}"))
    for version in range(4):
        assert await registry.root_at("b", version) == root(f"v{version}")
    assert await registry.root_at("b", 4) is None
    assert await registry.root_at("nope", 0) is None


# -- block locations ---------------------------------------------------------------------


async def test_block_locations_are_recorded_with_the_commit(registry: Registry) -> None:
    await registry.create_bucket("b", "alice", root("v0"))
    recorded = [location(f"block {i}", "car 1", offset=i * 100, length=i + 1) for i in range(3)]
    await commit(registry, "b", 0, root("v1"), recorded)
    for loc in recorded:
        assert await registry.find_block(loc.block) == loc
    assert await registry.find_block(sha2_256(b"never stored")) is None


async def test_find_blocks_answers_for_many_and_skips_unknown(registry: Registry) -> None:
    await registry.create_bucket("b", "alice", root("v0"))
    recorded = [location(f"block {i}", f"car {i % 7}", offset=i, length=i + 1) for i in range(1200)]
    await commit(registry, "b", 0, root("v1"), recorded)
    wanted = [loc.block for loc in recorded[::2]] + [sha2_256(b"unknown %d" % i) for i in range(5)]
    found = await registry.find_blocks(iter(wanted))  # any iterable, consumed once
    assert found == {loc.block: loc for loc in recorded[::2]}
    assert await registry.find_blocks([]) == {}


async def test_data_survives_closing_and_reopening(open_registry_again: OpenRegistry) -> None:
    async with open_registry_again() as registry:
        await registry.create_bucket("b", "alice", root("v0"))
        await commit(registry, "b", 0, root("v1"), [location("kept")])
        before = (await registry.get_bucket("b"), await registry.commit_log("b"))
    async with open_registry_again() as registry:
        assert (await registry.get_bucket("b"), await registry.commit_log("b")) == before
        assert await registry.find_block(location("kept").block) == location("kept")
        assert await commit(registry, "b", 1, root("v2")) == 2


async def test_claims_are_recorded_idempotently_and_listed_in_order(registry: Registry) -> None:
    from relay.registry import Claim

    first = Claim(b"\x12\x20" + b"a" * 32, "https://b.example/x", None, None)
    ranged = Claim(b"\x12\x20" + b"a" * 32, "https://a.example/pack", 100, 50)
    other = Claim(b"\x12\x20" + b"b" * 32, "s3://bucket/key")
    await registry.add_claims([first, ranged, other])
    await registry.add_claims([first])
    assert await registry.claims_for(first.content) == [ranged, first]
    assert await registry.claims_for(b"\x12\x20" + b"c" * 32) == []
    page = await registry.all_claims(limit=2)
    assert page == [ranged, first]
    rest = await registry.all_claims(after=(page[-1].content, page[-1].url))
    assert rest == [other]


async def test_bucket_settings_are_kept_per_name_and_go_with_the_bucket(
    registry: Registry,
) -> None:
    await registry.create_bucket("a", "owner", root("empty"))
    await registry.create_bucket("b", "owner", root("empty"))
    await registry.put_bucket_setting("a", "policy", b'{"Version": "2012-10-17"}')
    await registry.put_bucket_setting("a", "cors", b"<CORSConfiguration/>")
    await registry.put_bucket_setting("a", "cors", b"<CORSConfiguration></CORSConfiguration>")
    assert await registry.get_bucket_settings("a") == {
        "policy": b'{"Version": "2012-10-17"}',
        "cors": b"<CORSConfiguration></CORSConfiguration>",
    }
    assert await registry.get_bucket_settings("b") == {}
    await registry.put_bucket_setting("a", "policy", None)
    assert await registry.get_bucket_settings("a") == {
        "cors": b"<CORSConfiguration></CORSConfiguration>"
    }
    with pytest.raises(BucketMissing):
        await registry.put_bucket_setting("nope", "cors", b"x")
    await registry.delete_bucket("a", expected_version=0)
    await registry.create_bucket("a", "owner", root("empty"))
    assert await registry.get_bucket_settings("a") == {}


async def test_a_held_bucket_commits_first_and_holds_other_registries_off(
    open_registry_again: OpenRegistry,
) -> None:
    """hold_bucket is the path of a writer that lost a compare-and-swap: under it, its
    commit cannot lose, and another registry on the same file (another process) waits,
    then finds the version moved."""
    async with open_registry_again() as mine, open_registry_again() as theirs:
        await mine.create_bucket("b", "owner", root("empty"))
        order: list[str] = []

        async def their_commit() -> None:
            with pytest.raises(CommitConflict):
                await commit(theirs, "b", 0, root("theirs"))
            order.append("theirs refused")

        async with trio.open_nursery() as nursery:
            async with mine.hold_bucket("b") as current:
                assert current.version == 0
                nursery.start_soon(their_commit)
                await trio.sleep(0.2)  # they are waiting for the lock, not done
                assert order == []
                assert await commit(mine, "b", current.version, root("mine")) == 1
                order.append("mine")
        assert order == ["mine", "theirs refused"]
        assert (await theirs.get_bucket("b")).root == root("mine")  # type: ignore[union-attr]

        async def fail_after_committing() -> None:
            async with mine.hold_bucket("b") as current:
                await commit(mine, "b", current.version, root("rolled back"))
                raise RuntimeError("the batch failed after its commit statements")

        with pytest.raises(RuntimeError):
            await fail_after_committing()
        assert (await theirs.get_bucket("b")).version == 1  # type: ignore[union-attr]

        async def hold_a_missing_bucket() -> None:
            async with mine.hold_bucket("nope"):
                pass

        with pytest.raises(BucketMissing):
            await hold_a_missing_bucket()
