"""Each registry (SQLite and PostgreSQL, see conftest.py): multipart uploads and their
parts, completed uploads, what each bucket reaches. The engine's tests drive these through
SQLite; here both databases must give the same answers."""

from __future__ import annotations

import hashlib

import pytest

from relay.ipld.cid import CID
from relay.ipld.multihash import sha2_256
from relay.registry import PartRecord, Reach, Registry, UploadMissing


def root(label: str) -> CID:
    return CID.dag_cbor_sha256(hashlib.sha256(label.encode()).digest())


def part(upload_id: str, number: int, etag: str = "e") -> PartRecord:
    return PartRecord(upload_id, number, number * 10, etag, 1000 + number, b"leaves %d" % number)


async def test_uploads_list_in_key_byte_order_then_upload_id(registry: Registry) -> None:
    # "é" (c3 a9) sorts after "z" in UTF-8 bytes, as S3 lists; "Z" before "a".
    for upload_id, key in [("u3", "é"), ("u1", "a"), ("u2", "a"), ("u0", "Z"), ("u4", "z")]:
        await registry.create_upload(upload_id, "b", key, "alice", b"request " + key.encode())
    await registry.create_upload("elsewhere", "other", "a", "alice", b"")
    listed = await registry.list_uploads("b")
    assert [(u.key, u.upload_id) for u in listed] == [
        ("Z", "u0"),
        ("a", "u1"),
        ("a", "u2"),
        ("z", "u4"),
        ("é", "u3"),
    ]
    assert listed[-1].request == "request é".encode()
    after = await registry.list_uploads("b", after_key="a", after_upload_id="u1", limit=2)
    assert [u.upload_id for u in after] == ["u2", "u4"]
    # A key marker alone skips every upload of that key.
    assert [u.upload_id for u in await registry.list_uploads("b", after_key="a")] == ["u4", "u3"]
    assert await registry.get_upload("u3") == listed[-1]
    assert await registry.get_upload("nope") is None


async def test_parts_are_replaced_by_number_and_listed_in_order(registry: Registry) -> None:
    await registry.create_upload("u", "b", "k", "alice", b"")
    for number in (3, 1, 2):
        await registry.put_part(part("u", number))
    await registry.put_part(part("u", 2, etag="second try"))
    parts = await registry.list_parts("u")
    assert [(p.part_number, p.etag) for p in parts] == [(1, "e"), (2, "second try"), (3, "e")]
    assert parts[0] == part("u", 1)
    assert [p.part_number for p in await registry.list_parts("u", after_part=1, limit=1)] == [2]
    with pytest.raises(UploadMissing):
        await registry.put_part(part("missing", 1))


async def test_aborting_forgets_the_upload_and_its_parts(registry: Registry) -> None:
    await registry.create_upload("u", "b", "k", "alice", b"")
    await registry.put_part(part("u", 1))
    assert await registry.delete_upload("u") is True
    assert await registry.delete_upload("u") is False
    assert await registry.get_upload("u") is None
    assert await registry.list_parts("u") == []
    with pytest.raises(UploadMissing):
        await registry.put_part(part("u", 2))


async def test_a_completed_upload_is_remembered_until_forgotten(registry: Registry) -> None:
    await registry.create_upload("old", "b", "k1", "alice", b"")
    await registry.complete_upload("old", "1:e", b"manifest old", forget_before_ms=0)
    completed = await registry.get_completed_upload("old")
    assert completed is not None
    assert (completed.bucket, completed.key, completed.owner) == ("b", "k1", "alice")
    assert (completed.parts, completed.manifest) == ("1:e", b"manifest old")
    assert await registry.get_upload("old") is None

    await registry.create_upload("new", "b", "k2", "alice", b"")
    await registry.put_part(part("new", 1))
    await registry.complete_upload(
        "new", "1:e", b"manifest new", forget_before_ms=completed.completed_ms + 1
    )
    assert await registry.get_completed_upload("old") is None  # older than the horizon
    assert await registry.list_parts("new") == []
    assert (await registry.get_completed_upload("new")) is not None
    # Completing an upload that is gone records nothing.
    await registry.complete_upload("never", "", b"", forget_before_ms=0)
    assert await registry.get_completed_upload("never") is None


async def test_content_is_reachable_from_its_buckets_owners_only(registry: Registry) -> None:
    body, chunk, car = sha2_256(b"body"), sha2_256(b"chunk"), sha2_256(b"car")
    await registry.create_bucket("mine", "alice", root("v0"))
    await registry.create_bucket("theirs", "bob", root("v0"))
    await registry.commit(
        "mine",
        expected_version=0,
        root=root("v1"),
        car=car,
        locations=[],
        puts=1,
        deletes=0,
        reach=Reach(bodies=(body,), parts=((chunk, body),)),
    )
    for content in (body, chunk, car):
        assert await registry.content_reachable(content, owners=["alice"])
        assert not await registry.content_reachable(content, owners=["bob"])
        assert await registry.content_reachable(content, owners=[], buckets=["mine"])
        assert not await registry.content_reachable(content, owners=[], buckets=["theirs"])
    assert not await registry.content_reachable(sha2_256(b"other"), owners=["alice"])
    await registry.record_reach("theirs", Reach(bodies=(body,)))
    assert await registry.content_reachable(chunk, owners=["bob"])
    await registry.delete_bucket("mine", expected_version=1)
    assert not await registry.content_reachable(car, owners=["alice"])
    assert await registry.reach_backfill_pending() is False
    await registry.finish_reach_backfill()
