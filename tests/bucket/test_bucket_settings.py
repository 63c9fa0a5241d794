"""A bucket's settings (policy, ACL...): the engine's short-lived copy of them."""

from __future__ import annotations

from pathlib import Path

from trio.testing import MockClock

from relay.bucket.engine import BUCKET_SETTINGS_TTL_SECONDS, open_engine
from relay.registry import open_sqlite_registry
from relay.store import MemoryBlobStore


async def test_settings_written_here_are_seen_at_once_and_others_within_the_ttl(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    async with (
        open_sqlite_registry(tmp_path / "r.sqlite") as registry,
        open_engine(MemoryBlobStore(), registry) as engine,
    ):
        await engine.create_bucket("photos", owner="alice")
        assert await engine.bucket_settings("photos") == {}
        await engine.put_bucket_setting("photos", "policy", b"{}")
        assert await engine.bucket_settings("photos") == {"policy": b"{}"}
        # Another process serving the same registry changes it behind this engine's back.
        await registry.put_bucket_setting("photos", "policy", None)
        assert await engine.bucket_settings("photos") == {"policy": b"{}"}
        mock_clock.jump(BUCKET_SETTINGS_TTL_SECONDS)
        assert await engine.bucket_settings("photos") == {}
        await engine.put_bucket_setting("photos", "acl", b"[]")
        await engine.delete_bucket("photos")
        await engine.create_bucket("photos", owner="bob")
        assert await engine.bucket_settings("photos") == {}  # a new bucket starts bare
