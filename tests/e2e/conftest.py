"""End-to-end fixtures: one real relay process per test module, one bucket name per test.

The module-scoped server pays relay's start-up once per file; every test works in its own
bucket, so tests cannot see each other's objects.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import CHECKSUM_MODES, RelayProcess, boto_client, start_relay, stop_relay

_bucket_numbers = itertools.count()


@pytest.fixture(scope="module")
def relay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    relay = start_relay(tmp_path_factory.mktemp("relay"))
    saved = {name: os.environ.get(name) for name in relay.client_env if name.startswith("AWS_")}
    # In-process clients (boto3) must not read ~/.aws either.
    os.environ.update({name: relay.client_env[name] for name in saved})
    try:
        yield relay
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        code = stop_relay(relay.process)
    log = relay.log()
    # Failures a client saw were asserted by the tests; this catches what they could not:
    # an unclean stop, or an error relay logged with a traceback (an InternalError).
    assert code == 0, f"relay exited with {code}:\n{log[-5000:]}"
    assert "Traceback" not in log, log[-5000:]


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
