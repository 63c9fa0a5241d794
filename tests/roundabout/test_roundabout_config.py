"""``[roundabout]`` in the config file, ``RELAY_ROUNDABOUT_*`` and ``--roundabout``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relay.config import ConfigError, load_config
from relay.roundabout.config import RoundaboutConfigError, parse_roundabout
from relay.roundabout.matching import Service

ACCOUNT = "0123456789abcdef0123456789abcdef"
FILE = f"""
[roundabout]
listen = "127.0.0.1:9100"
require_auth = true

[[roundabout.buckets]]
endpoint = "https://{ACCOUNT}.r2.cloudflarestorage.com"
bucket = "carpark"
access_key_id = "R2KEY"
secret_access_key = "r2-secret-value"
preference = 2

[[roundabout.buckets]]
bucket = "aws-blobs"
region = "eu-west-1"
access_key_id = "AWSKEY"
secret_access_key = "aws-secret-value"
prefix = "blobs/"
key_access = true

[[roundabout.domains]]
domain = "CDN.Example.com"
endpoint = "https://{ACCOUNT}.r2.cloudflarestorage.com"
bucket = "carpark"

[[roundabout.grants]]
access_key_id = "gateway"
owners = ["alice", "bob"]

[[roundabout.grants]]
access_key_id = "gateway"
buckets = ["photos"]

[[roundabout.grants]]
access_key_id = "auditor"
buckets = ["*"]
"""


def test_roundabout_is_off_by_default() -> None:
    config = load_config(environ={})
    assert config.roundabout.listen is None
    assert config.roundabout.require_auth is False
    assert config.roundabout.buckets == ()


def test_the_file_is_read_and_buckets_are_in_preference_order(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(FILE)
    config = load_config(path, environ={}).roundabout
    assert config.listen == "127.0.0.1:9100"
    assert config.require_auth is True
    assert [b.bucket for b in config.buckets] == ["aws-blobs", "carpark"]
    aws, r2 = config.buckets
    assert (aws.endpoint.service, aws.region, aws.prefix) == (Service.AWS, "eu-west-1", "blobs/")
    assert (r2.endpoint.service, r2.endpoint.namespace, r2.region) == (Service.R2, ACCOUNT, "auto")
    assert config.domains[0].domain == "cdn.example.com"
    assert "secret-value" not in repr(config)
    assert (aws.key_access, r2.key_access) == (True, False)  # off unless set


def test_grants_add_to_what_a_key_owns() -> None:
    config = parse_roundabout(
        {
            "grants": [
                {"access_key_id": "gateway", "owners": ["alice", "bob"]},
                {"access_key_id": "gateway", "buckets": ["photos"]},
                {"access_key_id": "auditor", "buckets": ["*"]},
            ]
        }
    )
    gateway = config.scope_for("gateway")
    assert gateway.owners == {"gateway", "", "alice", "bob"}
    assert (gateway.buckets, gateway.everything) == ({"photos"}, False)
    assert config.scope_for("auditor").everything
    alice = config.scope_for("alice")  # no grant: her own and unowned buckets
    assert (alice.owners, alice.buckets, alice.everything) == ({"alice", ""}, set(), False)


def test_the_file_holds_grants(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(FILE)
    config = load_config(path, environ={}).roundabout
    assert config.scope_for("gateway").owners == {"gateway", "", "alice", "bob"}
    assert config.scope_for("auditor").everything


def test_environment_then_option_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(FILE)
    environ = {"RELAY_ROUNDABOUT_LISTEN": "0.0.0.0:9200", "RELAY_ROUNDABOUT_REQUIRE_AUTH": "0"}
    config = load_config(path, environ=environ).roundabout
    assert (config.listen, config.require_auth) == ("0.0.0.0:9200", False)
    assert load_config(path, environ=environ, roundabout="[::1]:0").roundabout.listen == "[::1]:0"


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({"listne": "x"}, "roundabout.listne"),
        ({"require_auth": "maybe"}, "require_auth"),
        ({"buckets": {"bucket": "b"}}, "array of tables"),
        ({"buckets": [{"bucket": "b", "access_key_id": "k", "secret_access_key": "s"}]},
         "endpoint or an AWS region"),
        ({"buckets": [{"region": "eu-west-1", "access_key_id": "k", "secret_access_key": "s"}]},
         "bucket"),
        ({"buckets": [{"bucket": "b", "region": "eu-west-1", "access_key_id": "k"}]},
         "secret_access_key"),
        ({"buckets": [{"bucket": "b", "region": "eu-west-1", "access_key_id": "k",
                       "secret_access_key": "s", "colour": "red"}]}, "colour"),
        ({"buckets": [{"endpoint": "https://s3.us-west-2.amazonaws.com", "region": "eu-west-1",
                       "bucket": "b", "access_key_id": "k", "secret_access_key": "s"}]},
         "differs"),
        ({"buckets": [{"endpoint": "https://bkt.s3.amazonaws.com", "bucket": "bkt",
                       "access_key_id": "k", "secret_access_key": "s"}]}, "bucket's host"),
        ({"buckets": [{"endpoint": "https://s3.amazonaws.com", "bucket": "b",
                       "access_key_id": "k", "secret_access_key": "s"}]}, "region is needed"),
        ({"buckets": [{"endpoint": "https://minio.internal/base", "bucket": "b",
                       "access_key_id": "k", "secret_access_key": "s"}]}, "nothing more"),
        ({"buckets": [{"bucket": "b", "region": "eu-west-1", "access_key_id": "k",
                       "secret_access_key": "s", "preference": "high"}]}, "preference"),
        ({"buckets": [{"bucket": "b", "region": "eu-west-1", "access_key_id": "k",
                       "secret_access_key": "s", "key_access": "yes"}]}, "key_access"),
        ({"grants": {"access_key_id": "k"}}, "array of tables"),
        ({"grants": [{"owners": ["a"]}]}, "access_key_id"),
        ({"grants": [{"access_key_id": "k"}]}, "grants nothing"),
        ({"grants": [{"access_key_id": "k", "owners": "alice"}]}, "list of non-empty strings"),
        ({"grants": [{"access_key_id": "k", "buckets": [""]}]}, "list of non-empty strings"),
        ({"grants": [{"access_key_id": "k", "owner": ["a"]}]}, r"grants\[0\]\.owner"),
        ({"domains": [{"domain": "a.com/x", "endpoint": "http://h:1", "bucket": "b"}]},
         "bare hostname"),
        ({"domains": [{"domain": "a.com", "endpoint": "http://h:1", "bucket": "b"},
                      {"domain": "A.com", "endpoint": "http://h:2", "bucket": "c"}]}, "once"),
    ],
)  # fmt: skip
def test_bad_settings_are_named(table: dict[str, Any], complaint: str) -> None:
    with pytest.raises(RoundaboutConfigError, match=complaint):
        parse_roundabout(table)


def test_config_errors_surface_as_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text('[roundabout]\nlisten = "nope"\n')
    with pytest.raises(ConfigError, match="HOST:PORT"):
        load_config(path, environ={})
    path.write_text("[roundabout]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"roundabout\.port"):
        load_config(path, environ={})
