"""``registry.url``: SQLite by default, PostgreSQL by URL; the combination that cannot be
right across hosts is refused at start; the URL's password is never shown."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from relay.config import ConfigError, IncompatibleSettings, load_config
from relay.registry.config import RegistryConfig, redact_url

SECRET = "s3cr3t-Pa55"
URL = f"postgresql://relay:{SECRET}@db.internal:5432/relay"
S3_STORE = {
    "RELAY_STORE": "s3",
    "RELAY_S3_ENDPOINT": "http://127.0.0.1:9",
    "RELAY_S3_BUCKET": "blobs",
    "RELAY_S3_ACCESS_KEY_ID": "AKID",
    "RELAY_S3_SECRET_ACCESS_KEY": "secret",
}


def test_the_default_registry_is_sqlite_in_the_data_directory() -> None:
    config = load_config(environ={})
    assert config.registry == RegistryConfig()
    assert not config.registry.is_postgres


def test_the_url_comes_from_the_file_the_environment_and_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        '[store]\nkind = "s3"\n[store.s3]\nendpoint = "http://127.0.0.1:9"\nbucket = "b"\n'
        'access_key_id = "a"\nsecret_access_key = "s"\n'
        f'[registry]\nurl = "{URL}"\nstatement_timeout_seconds = 7\npool_size = 3\n'
    )
    config = load_config(path, environ={})
    assert (config.registry.url, config.registry.statement_timeout_seconds) == (URL, 7.0)
    assert config.registry.pool_size == 3
    other = "postgresql://other@db2/relay"
    assert load_config(path, environ={"RELAY_REGISTRY_URL": other}).registry.url == other
    flagged = load_config(path, environ={"RELAY_REGISTRY_URL": other}, registry_url=URL)
    assert flagged.registry.url == URL


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_postgres_with_a_per_host_store_is_refused(kind: str) -> None:
    with pytest.raises(IncompatibleSettings) as caught:
        load_config(environ={"RELAY_STORE": kind, "RELAY_REGISTRY_URL": URL})
    assert 'use store.kind = "s3" or "piri" with PostgreSQL' in str(caught.value)
    assert SECRET not in str(caught.value)


def test_postgres_with_a_shared_store_is_accepted() -> None:
    config = load_config(environ={**S3_STORE, "RELAY_REGISTRY_URL": URL})
    assert config.registry.is_postgres
    assert SECRET not in repr(config)


def test_a_url_that_is_not_postgres_is_refused_without_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={**S3_STORE, "RELAY_REGISTRY_URL": f"mysql://u:{SECRET}@h/db"})
    assert "postgresql://" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (URL, "postgresql://relay:***@db.internal:5432/relay"),
        (
            f"postgresql://db/relay?user=relay&password={SECRET}&sslmode=require",
            "postgresql://db/relay?user=relay&password=***&sslmode=require",
        ),
        ("postgresql://relay@db/relay", "postgresql://relay@db/relay"),
    ],
)
def test_redaction_hides_the_password_wherever_the_url_holds_it(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert SECRET not in repr(RegistryConfig(url=url))


@pytest.mark.parametrize(
    ("setting", "value"),
    [("RELAY_REGISTRY_CONNECT_TIMEOUT_SECONDS", "0"), ("RELAY_REGISTRY_POOL_SIZE", "0")],
)
def test_out_of_range_registry_settings_are_refused(setting: str, value: str) -> None:
    with pytest.raises(ConfigError, match=setting.removeprefix("RELAY_REGISTRY_").lower()):
        load_config(environ={**S3_STORE, "RELAY_REGISTRY_URL": URL, setting: value})


def test_relay_serve_refuses_postgres_with_the_disk_store_with_exit_code_2(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay", "serve", "--data", str(tmp_path), "--registry-url", URL],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("RELAY_")},
        check=False,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert 'use store.kind = "s3" or "piri" with PostgreSQL' in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "registry.sqlite").exists()  # refused before anything opened


def test_relay_serve_with_postgres_unreachable_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = f"postgresql://relay:{SECRET}@127.0.0.1:{closed}/relay"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "relay",
            "serve",
            "--data",
            str(tmp_path),
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        env={**env, **S3_STORE, "RELAY_REGISTRY_URL": url},
        check=False,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("relay: cannot open the registry at postgresql://relay:***@")
    assert SECRET not in result.stdout + result.stderr
