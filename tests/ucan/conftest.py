"""Fixtures for the relay.ucan tests: the reference vectors and the keys they were made with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relay.ucan import Signer


@pytest.fixture(scope="session")
def piri_vectors(vectors_dir: Path) -> dict[str, Any]:
    vectors: dict[str, Any] = json.loads(
        (vectors_dir / "ucan" / "piri-vectors.json").read_text(encoding="utf-8")
    )
    return vectors


@pytest.fixture(scope="session")
def client(piri_vectors: dict[str, Any]) -> Signer:
    return Signer.from_seed(bytes.fromhex(piri_vectors["keys"]["client"]["seed"]))


@pytest.fixture(scope="session")
def piri(piri_vectors: dict[str, Any]) -> Signer:
    return Signer.from_seed(bytes.fromhex(piri_vectors["keys"]["piri"]["seed"]))


@pytest.fixture(scope="session")
def space(piri_vectors: dict[str, Any]) -> Signer:
    return Signer.from_seed(bytes.fromhex(piri_vectors["keys"]["space"]["seed"]))
