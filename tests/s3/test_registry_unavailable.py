"""A registry that is down is S3's retryable 503 ServiceUnavailable, naming nothing behind
relay (the database, its address, its password)."""

from __future__ import annotations

from relay.registry.base import RegistryUnavailable
from relay.s3.errors import from_exception


def test_an_unavailable_registry_is_a_503_service_unavailable_that_names_nothing() -> None:
    error = from_exception(
        RegistryUnavailable("the registry at postgresql://relay:***@10.0.0.7/relay is down")
    )
    assert (error.code, error.status) == ("ServiceUnavailable", 503)
    assert error.message == "Service is unable to handle request."
    assert "10.0.0.7" not in error.message
