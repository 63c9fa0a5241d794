"""What garbage collection reads from and writes to each registry (SQLite and PostgreSQL,
see conftest.py): retained commits, pins, and forgetting every row of a deleted blob."""

from __future__ import annotations

import hashlib

from relay.ipld.cid import CID
from relay.ipld.multihash import sha2_256
from relay.registry import BlockLocation, Claim, Registry
from relay.registry.base import Reach, now_ms


def root(label: str) -> CID:
    return CID.dag_cbor_sha256(hashlib.sha256(label.encode()).digest())


async def test_commits_since_lists_every_buckets_commits_from_a_time(
    registry: Registry,
) -> None:
    await registry.create_bucket("a", "k", root("a0"))
    await registry.create_bucket("b", "k", root("b0"))
    await registry.commit(
        "a", expected_version=0, root=root("a1"), car=None, locations=[], puts=1, deletes=0
    )
    everything = await registry.commits_since(0)
    assert {(c.bucket, c.version) for c in everything} == {("a", 0), ("b", 0), ("a", 1)}
    assert await registry.commits_since(now_ms() + 60_000) == []
    newest = max(c.time_ms for c in everything)
    assert {(c.bucket, c.version) for c in await registry.commits_since(newest)} <= {
        ("a", 0),
        ("b", 0),
        ("a", 1),
    }


async def test_commit_at_answers_one_commit_or_none(registry: Registry) -> None:
    await registry.create_bucket("a", "k", root("a0"))
    record = await registry.commit_at("a", 0)
    assert record is not None
    assert (record.bucket, record.version, record.root) == ("a", 0, root("a0"))
    assert await registry.commit_at("a", 1) is None
    assert await registry.commit_at("nope", 0) is None


async def test_pins_are_set_replaced_listed_and_removed(registry: Registry) -> None:
    assert await registry.list_pins() == []
    await registry.set_pin("snap-1", "a", root("r1"))
    await registry.set_pin("snap-2", "a", root("r2"))
    await registry.set_pin("snap-1", "a", root("r3"))
    assert [(p.name, p.bucket, p.root) for p in await registry.list_pins()] == [
        ("snap-1", "a", root("r3")),
        ("snap-2", "a", root("r2")),
    ]
    await registry.set_pin("snap-1", "a", None)
    assert [p.name for p in await registry.list_pins()] == ["snap-2"]


async def test_forget_blobs_drops_every_row_naming_them_and_no_other(
    registry: Registry,
) -> None:
    dead_car, live_car = sha2_256(b"dead car"), sha2_256(b"live car")
    dead_chunk, live_chunk = sha2_256(b"dead chunk"), sha2_256(b"live chunk")
    dead_body, live_body = sha2_256(b"dead body"), sha2_256(b"live body")
    await registry.create_bucket("a", "k", root("a0"))
    await registry.commit(
        "a",
        expected_version=0,
        root=root("a1"),
        car=live_car,
        locations=[
            BlockLocation(dead_body, dead_car, 0, 10),
            BlockLocation(live_body, live_car, 0, 10),
        ],
        puts=2,
        deletes=0,
        reach=Reach(
            (dead_body, live_body),
            ((dead_chunk, dead_body), (dead_car, dead_body), (live_chunk, live_body)),
        ),
    )
    await registry.add_claims(
        [Claim(dead_chunk, "https://x/dead"), Claim(live_chunk, "https://x/live")]
    )

    await registry.forget_blobs([dead_car, dead_chunk])

    assert await registry.find_block(dead_body) is None
    assert await registry.find_block(live_body) == BlockLocation(live_body, live_car, 0, 10)
    assert await registry.claims_for(dead_chunk) == []
    assert await registry.claims_for(live_chunk) == [Claim(live_chunk, "https://x/live")]
    for gone in (dead_chunk, dead_car, dead_body):
        assert not await registry.content_reachable(gone, owners=["k"])
    for kept in (live_chunk, live_car, live_body):
        assert await registry.content_reachable(kept, owners=["k"])
