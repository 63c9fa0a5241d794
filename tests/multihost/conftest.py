"""Fixtures for tests across hosts: a network of namespaces, torn down after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netns import Network, namespaces_or_skip, open_network


@pytest.fixture
def network() -> Iterator[Network]:
    namespaces_or_skip()
    with open_network() as opened:
        yield opened
