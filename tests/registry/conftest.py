"""The registry fixtures: every registry test runs against SQLite and against PostgreSQL.

``registry`` is an open, empty registry of each kind; ``open_registry_again`` opens another
one over the same database (a reopening, or a second host). PostgreSQL is a real server
(``tests/pg.py``), started once for the session; each test gets a fresh database on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from pg import PostgresServer, postgres_or_fail

from relay.registry import Registry, open_sqlite_registry
from relay.registry.config import RegistryConfig

OpenRegistry = Callable[[], AbstractAsyncContextManager[Registry]]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = postgres_or_fail()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgres"])
def open_registry_again(request: pytest.FixtureRequest, tmp_path: Path) -> OpenRegistry:
    """Opens a registry over this test's database, as often as the test likes."""
    if request.param == "sqlite":
        path = tmp_path / "nested" / "r.sqlite"
        return lambda: open_sqlite_registry(path)
    from relay.registry.postgres import open_postgres_registry

    server: PostgresServer = request.getfixturevalue("postgres_server")
    config = RegistryConfig(url=server.new_database())
    return lambda: open_postgres_registry(config)


@pytest.fixture
async def registry(open_registry_again: OpenRegistry) -> AsyncIterator[Registry]:
    async with open_registry_again() as opened:
        yield opened
