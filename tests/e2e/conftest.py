"""End-to-end fixtures: one real relay process per test module, one bucket name per test.

The module-scoped server pays relay's start-up once per file; every test works in its own
bucket, so tests cannot see each other's objects.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import CHECKSUM_MODES, RelayProcess, boto_client, serving_clients, start_relay

_bucket_numbers = itertools.count()


@pytest.fixture(scope="module")
def relay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    with serving_clients(start_relay(tmp_path_factory.mktemp("relay"))) as relay:
        yield relay


@pytest.fixture
def bucket_name(request: pytest.FixtureRequest) -> str:
    """A bucket name no other test uses (not created)."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"{stem[:40].rstrip('-')}-{next(_bucket_numbers)}"


@pytest.fixture(scope="module", params=CHECKSUM_MODES)
def s3(request: pytest.FixtureRequest, relay_server: RelayProcess) -> Any:
    """A boto3 client per checksum mode (a module may define its own ``s3`` instead)."""
    mode: str = request.param
    calculation = "when_required" if mode == "when_required" else "when_supported"
    return boto_client(
        relay_server,
        trailer_checksums=mode == "trailer",
        request_checksum_calculation=calculation,
        response_checksum_validation=calculation,
    )


@pytest.fixture(scope="module")
def client(relay_server: RelayProcess) -> Any:
    """botocore's defaults, one client per module (a new client costs ~0.2 s)."""
    return boto_client(relay_server)


@pytest.fixture
def bucket(client: Any, bucket_name: str) -> str:
    client.create_bucket(Bucket=bucket_name)
    return bucket_name
