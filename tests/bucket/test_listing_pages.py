"""Listing pages against a slow reference: every key once, every prefix once, in order."""

from __future__ import annotations

import bisect

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.bucket.listing import common_prefix_of, list_page, resume_after
from relay.ipld.cid import CID
from relay.s3.listing import decode_token, encode_token

VALUE = CID.decode("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454")


def reference(keys: list[str], prefix: str, delimiter: str) -> list[tuple[str, str]]:
    """All entries of a listing, in order: ("key", k) or ("prefix", p)."""
    entries: list[tuple[str, str]] = []
    for key in sorted(set(keys), key=lambda k: k.encode()):
        if not key.startswith(prefix):
            continue
        rolled = common_prefix_of(key, prefix, delimiter)
        entry = ("key", key) if rolled is None else ("prefix", rolled)
        if entry not in entries:
            entries.append(entry)
    return entries


def source(keys: list[str]):  # type: ignore[no-untyped-def]
    ordered = sorted({k.encode() for k in keys})
    calls = []

    async def list_keys(prefix: str, after: bytes, limit: int):  # type: ignore[no-untyped-def]
        calls.append(after)
        start = bisect.bisect_right(ordered, after)
        start = max(start, bisect.bisect_left(ordered, prefix.encode()))
        found = []
        for raw in ordered[start:]:
            if not raw.startswith(prefix.encode()):
                break
            if len(found) == limit:
                return found, True
            found.append((raw.decode(), VALUE))
        return found, False

    return list_keys, calls


async def summaries(cids: list[CID]) -> list[object]:
    return [object() for _ in cids]


async def all_pages(keys: list[str], prefix: str, delimiter: str, max_keys: int):  # type: ignore[no-untyped-def]
    list_keys, calls = source(keys)
    entries: list[tuple[str, str]] = []
    cursor = b""
    for _ in range(10_000):
        page = await list_page(
            list_keys,
            summaries,
            prefix=prefix,
            delimiter=delimiter,
            cursor=cursor,  # type: ignore[arg-type]
            max_keys=max_keys,
        )
        entries += [("key", k) for k, _ in page.keys]
        entries += [("prefix", p) for p in page.common_prefixes]
        assert len(page.keys) + len(page.common_prefixes) <= max_keys
        if not page.is_truncated:
            return entries, calls
        cursor = decode_token(encode_token(page.cursor))
    raise AssertionError("listing never ended")


def sort_entries(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(entries, key=lambda e: e[1].encode())


KEYS = st.lists(st.text(alphabet="ab/c+é", min_size=1, max_size=6), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    keys=KEYS,
    prefix=st.sampled_from(["", "a", "a/", "b/c", "é"]),
    delimiter=st.sampled_from(["", "/", "c", "/c"]),
    max_keys=st.integers(1, 5),
)
def test_paged_listing_equals_the_reference(
    keys: list[str], prefix: str, delimiter: str, max_keys: int
) -> None:
    entries, _ = trio.run(all_pages, keys, prefix, delimiter, max_keys)
    assert sort_entries(entries) == sort_entries(reference(keys, prefix, delimiter))
    assert len(entries) == len(set(entries)), "an entry was listed twice"


def test_a_big_common_prefix_costs_one_seek_not_a_walk() -> None:
    keys = [f"photos/{i:05d}.jpg" for i in range(5000)] + ["readme", "zeta/1"]
    entries, calls = trio.run(all_pages, keys, "", "/", 1000)
    assert sort_entries(entries) == [("prefix", "photos/"), ("key", "readme"), ("prefix", "zeta/")]
    assert len(calls) <= 6


def test_a_marker_inside_a_listed_prefix_resumes_after_the_prefix() -> None:
    assert resume_after("photos/", "", "/") == b"photos/\xff"
    assert resume_after("photos/1.jpg", "", "/") == b"photos/\xff"
    assert resume_after("readme", "", "/") == b"readme"
    assert resume_after("readme", "", "") == b"readme"
