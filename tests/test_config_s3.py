"""``[store] kind = "s3"``: the ``[store.s3]`` table, its ``RELAY_S3_*`` equivalents, and
the errors a missing or misspelt setting gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, load_config

FULL = """
[store]
kind = "s3"

[store.s3]
endpoint = "https://acct.r2.cloudflarestorage.com"
region = "auto"
bucket = "relay-blobs"
prefix = "p/"
access_key_id = "AKID"
secret_access_key = "file-secret"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return path


def test_the_s3_table_configures_the_store(tmp_path: Path) -> None:
    s3 = load_config(write(tmp_path, FULL), environ={}).store.s3
    assert s3 is not None
    assert (s3.endpoint, s3.region, s3.bucket, s3.prefix) == (
        "https://acct.r2.cloudflarestorage.com",
        "auto",
        "relay-blobs",
        "p/",
    )
    assert (s3.access_key_id, s3.secret_access_key) == ("AKID", "file-secret")
    assert "file-secret" not in repr(s3)


def test_the_environment_alone_configures_it_and_defaults_fill_in() -> None:
    environ = {
        "RELAY_STORE": "s3",
        "RELAY_S3_ENDPOINT": "http://127.0.0.1:9",
        "RELAY_S3_BUCKET": "b",
        "RELAY_S3_ACCESS_KEY_ID": "k",
        "RELAY_S3_SECRET_ACCESS_KEY": "s",
    }
    s3 = load_config(environ=environ).store.s3
    assert s3 is not None
    assert (s3.endpoint, s3.bucket, s3.region, s3.prefix) == (
        "http://127.0.0.1:9",
        "b",
        "us-east-1",
        "",
    )


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    environ = {"RELAY_S3_SECRET_ACCESS_KEY": "env-secret", "RELAY_S3_PREFIX": ""}
    s3 = load_config(write(tmp_path, FULL), environ=environ).store.s3
    assert s3 is not None
    assert (s3.secret_access_key, s3.prefix) == ("env-secret", "")


@pytest.mark.parametrize(
    ("setting", "variable"),
    [
        ("endpoint", "RELAY_S3_ENDPOINT"),
        ("bucket", "RELAY_S3_BUCKET"),
        ("access_key_id", "RELAY_S3_ACCESS_KEY_ID"),
        ("secret_access_key", "RELAY_S3_SECRET_ACCESS_KEY"),
    ],
)
def test_a_missing_required_setting_is_named(tmp_path: Path, setting: str, variable: str) -> None:
    text = "\n".join(line for line in FULL.splitlines() if not line.startswith(setting + " "))
    with pytest.raises(ConfigError, match=rf"store\.s3\.{setting} \({variable}\)"):
        load_config(write(tmp_path, text), environ={})


def test_an_unknown_s3_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting store\.s3\.secret_key"):
        load_config(write(tmp_path, FULL + 'secret_key = "x"\n'), environ={})


def test_a_bad_endpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        load_config(write(tmp_path, FULL.replace("https://", "ftp://")), environ={})


def test_other_store_kinds_need_no_s3_settings() -> None:
    assert load_config(environ={"RELAY_STORE": "disk"}).store.s3 is None
