"""The ``[roundabout]`` settings, read from a TOML table (``relay.config`` calls this).

    [roundabout]
    listen = "10.0.0.5:9100"      # RELAY_ROUNDABOUT_LISTEN; absent: no roundabout listener
    require_auth = false          # RELAY_ROUNDABOUT_REQUIRE_AUTH: SigV4 with relay's keys

    [[roundabout.buckets]]        # buckets relay may presign GETs for
    endpoint = "https://<account>.r2.cloudflarestorage.com"   # AWS, R2 or any S3 origin
    bucket = "carpark"
    region = "auto"               # optional: "auto" for R2, the endpoint's for AWS
    access_key_id = "..."
    secret_access_key = "..."
    prefix = ""                   # optional: only keys under it are signed
    preference = 0                # optional: lower is preferred; ties keep file order
    key_access = false            # optional: true answers /key/{key}?bucket=carpark

    [[roundabout.domains]]        # custom domains in front of a bucket
    domain = "cdn.example.com"
    endpoint = "https://<account>.r2.cloudflarestorage.com"
    bucket = "carpark"
    prefix = ""                   # optional: https://cdn.example.com/x is <prefix>x

    [[roundabout.grants]]         # with require_auth: more than a key's own buckets
    access_key_id = "gateway"     # one of relay's access keys
    owners = ["alice"]            # content reachable from any bucket these keys own
    buckets = ["photos"]          # content reachable from these buckets
                                  # "*" in either: every CID roundabout holds a claim for

An AWS bucket may leave out ``endpoint``: it is then ``https://s3.<region>.amazonaws.com``.

With ``require_auth``, a CID is answered only for content reachable from a bucket the
signing key owns (or an unowned bucket, which every key may use in S3 too), plus what its
grants add; ``RoundaboutConfig.scope_for`` says which, ``relay.roundabout.app`` asks the
registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from relay.roundabout.matching import (
    CustomDomain,
    Endpoint,
    Service,
    SigningBucket,
    aws_endpoint,
    parse_endpoint,
)

_SETTINGS: Final = frozenset({"listen", "require_auth", "buckets", "domains", "grants"})
_BUCKET_FIELDS: Final = frozenset(
    {
        "endpoint",
        "bucket",
        "region",
        "access_key_id",
        "secret_access_key",
        "prefix",
        "preference",
        "key_access",
    }
)
_GRANT_FIELDS: Final = frozenset({"access_key_id", "owners", "buckets"})
EVERYTHING: Final = "*"
_DOMAIN_FIELDS: Final = frozenset({"domain", "endpoint", "bucket", "prefix"})
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class RoundaboutConfigError(ValueError):
    """A ``[roundabout]`` setting that is missing, of the wrong type or out of range."""


@dataclass(frozen=True, slots=True)
class Grant:
    """``[[roundabout.grants]]``: content ``access_key_id`` may be redirected to beyond
    its own buckets' (``everything``: any CID roundabout holds a claim for)."""

    access_key_id: str
    owners: frozenset[str] = frozenset()
    buckets: frozenset[str] = frozenset()
    everything: bool = False


@dataclass(frozen=True, slots=True)
class ContentScope:
    """The content one access key may be redirected to: whatever is reachable from a
    bucket owned by one of ``owners`` ("" stands for unowned buckets) or named in
    ``buckets``; with ``everything``, any CID at all."""

    owners: frozenset[str]
    buckets: frozenset[str] = frozenset()
    everything: bool = False


@dataclass(frozen=True, slots=True)
class RoundaboutConfig:
    listen: str | None = None  # HOST:PORT; None: roundabout is off
    require_auth: bool = False
    buckets: tuple[SigningBucket, ...] = ()  # in preference order
    domains: tuple[CustomDomain, ...] = ()
    grants: tuple[Grant, ...] = ()

    def scope_for(self, access_key: str) -> ContentScope:
        """What ``access_key`` may be redirected to: its own and unowned buckets' content,
        plus every grant naming it."""
        owners = {access_key, ""}
        buckets: set[str] = set()
        everything = False
        for grant in self.grants:
            if grant.access_key_id == access_key:
                owners |= grant.owners
                buckets |= grant.buckets
                everything = everything or grant.everything
        return ContentScope(frozenset(owners), frozenset(buckets), everything)


def _string(table: Mapping[str, Any], name: str, where: str, *, default: str | None = None) -> str:
    value = table.get(name, default)
    if not isinstance(value, str) or (default is None and not value):
        raise RoundaboutConfigError(f"{where}.{name} must be a non-empty string")
    return value


def _tables(value: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RoundaboutConfigError(f"[[{where}]] must be an array of tables")
    return value


def _endpoint(value: str, where: str) -> Endpoint:
    try:
        return parse_endpoint(value)
    except ValueError as exc:
        raise RoundaboutConfigError(f"{where}.endpoint: {exc}") from None


def _bucket(table: Mapping[str, Any], where: str) -> SigningBucket:
    unknown = sorted(set(table) - _BUCKET_FIELDS)
    if unknown:
        raise RoundaboutConfigError(f"unknown setting {where}.{unknown[0]}")
    region = table.get("region")
    if region is not None and (not isinstance(region, str) or not region):
        raise RoundaboutConfigError(f"{where}.region must be a non-empty string")
    if "endpoint" in table:
        endpoint = _endpoint(_string(table, "endpoint", where), where)
    elif region is not None:
        endpoint = aws_endpoint(region, china=region.startswith("cn-"))
    else:
        raise RoundaboutConfigError(f"{where} needs an endpoint or an AWS region")
    if endpoint.service is Service.AWS:
        if region is None:
            region = endpoint.region
        elif endpoint.region is not None and endpoint.region != region:
            raise RoundaboutConfigError(
                f"{where}: region {region!r} differs from the endpoint's {endpoint.region!r}"
            )
        if region is None:
            raise RoundaboutConfigError(f"{where}.region is needed for this AWS endpoint")
    elif region is None:
        region = "auto" if endpoint.service is Service.R2 else "us-east-1"
    preference = table.get("preference", 0)
    if not isinstance(preference, int) or isinstance(preference, bool):
        raise RoundaboutConfigError(f"{where}.preference must be an integer")
    key_access = table.get("key_access", False)
    if not isinstance(key_access, bool):
        raise RoundaboutConfigError(f"{where}.key_access must be true or false")
    return SigningBucket(
        endpoint=endpoint,
        bucket=_string(table, "bucket", where),
        region=region,
        access_key_id=_string(table, "access_key_id", where),
        secret_access_key=_string(table, "secret_access_key", where),
        prefix=_string(table, "prefix", where, default=""),
        preference=preference,
        key_access=key_access,
    )


def _domain(table: Mapping[str, Any], where: str) -> CustomDomain:
    unknown = sorted(set(table) - _DOMAIN_FIELDS)
    if unknown:
        raise RoundaboutConfigError(f"unknown setting {where}.{unknown[0]}")
    domain = _string(table, "domain", where).lower()
    if "/" in domain or ":" in domain or "@" in domain:
        raise RoundaboutConfigError(f"{where}.domain must be a bare hostname, not {domain!r}")
    return CustomDomain(
        domain=domain,
        endpoint=_endpoint(_string(table, "endpoint", where), where),
        bucket=_string(table, "bucket", where),
        prefix=_string(table, "prefix", where, default=""),
    )


def _names(table: Mapping[str, Any], name: str, where: str) -> frozenset[str]:
    value = table.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RoundaboutConfigError(f"{where}.{name} must be a list of non-empty strings")
    return frozenset(value)


def _grant(table: Mapping[str, Any], where: str) -> Grant:
    unknown = sorted(set(table) - _GRANT_FIELDS)
    if unknown:
        raise RoundaboutConfigError(f"unknown setting {where}.{unknown[0]}")
    owners = _names(table, "owners", where)
    buckets = _names(table, "buckets", where)
    if not owners and not buckets:
        raise RoundaboutConfigError(f"{where} grants nothing: give owners or buckets")
    return Grant(
        access_key_id=_string(table, "access_key_id", where),
        owners=owners - {EVERYTHING},
        buckets=buckets - {EVERYTHING},
        everything=EVERYTHING in owners | buckets,
    )


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise RoundaboutConfigError(f"{name} must be true or false, not {value!r}")


def parse_roundabout(
    table: Any,
    environ: Mapping[str, str] | None = None,
    *,
    listen: str | None = None,
) -> RoundaboutConfig:
    """The ``[roundabout]`` table, then ``RELAY_ROUNDABOUT_*`` variables, then ``listen``
    (``relay serve --roundabout``)."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise RoundaboutConfigError("[roundabout] must be a table")
    unknown = sorted(set(table) - _SETTINGS)
    if unknown:
        raise RoundaboutConfigError(f"unknown setting roundabout.{unknown[0]}")
    environ = environ or {}
    chosen_listen = table.get("listen")
    if chosen_listen is not None and not isinstance(chosen_listen, str):
        raise RoundaboutConfigError("roundabout.listen must be a HOST:PORT string")
    chosen_listen = environ.get("RELAY_ROUNDABOUT_LISTEN", chosen_listen) or None
    if listen is not None:
        chosen_listen = listen
    require_auth = _flag(table.get("require_auth", False), "roundabout.require_auth")
    if "RELAY_ROUNDABOUT_REQUIRE_AUTH" in environ:
        require_auth = _flag(
            environ["RELAY_ROUNDABOUT_REQUIRE_AUTH"], "RELAY_ROUNDABOUT_REQUIRE_AUTH"
        )
    buckets = [
        _bucket(item, f"roundabout.buckets[{index}]")
        for index, item in enumerate(_tables(table.get("buckets", []), "roundabout.buckets"))
    ]
    domains = [
        _domain(item, f"roundabout.domains[{index}]")
        for index, item in enumerate(_tables(table.get("domains", []), "roundabout.domains"))
    ]
    if len({domain.domain for domain in domains}) != len(domains):
        raise RoundaboutConfigError("each [[roundabout.domains]] domain may appear only once")
    grants = [
        _grant(item, f"roundabout.grants[{index}]")
        for index, item in enumerate(_tables(table.get("grants", []), "roundabout.grants"))
    ]
    # Stable sort: equal preferences keep the file's order.
    buckets.sort(key=lambda bucket: bucket.preference)
    return RoundaboutConfig(
        chosen_listen, require_auth, tuple(buckets), tuple(domains), tuple(grants)
    )
