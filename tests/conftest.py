"""Shared fixtures: where the external test vectors live. And botocore's own signer."""

from __future__ import annotations

import os
from pathlib import Path

import botocore.auth
import pytest

# relay's CRCs come from awscrt, and with awscrt installed botocore signs with the CRT's
# SigV4 signers. The tests use botocore's Python signers as their SigV4 oracle (and patch
# their clock), so they keep those; botocore still takes CRC32C and CRC64NVME from awscrt.
botocore.auth.AUTH_TYPE_MAPS.update(
    {
        "v4": botocore.auth.SigV4Auth,
        "v4-query": botocore.auth.SigV4QueryAuth,
        "s3v4": botocore.auth.S3SigV4Auth,
        "s3v4-query": botocore.auth.S3SigV4QueryAuth,
    }
)

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RELAY_SHARED_DIR", REPO.parent / "shared"))
VECTORS = SHARED / "vectors"


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    if not VECTORS.is_dir():
        pytest.fail(f"the shared test vectors are missing: expected them at {VECTORS}")
    return VECTORS
