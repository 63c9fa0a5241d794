"""Access keys: config tables, the environment, and the pair generated on first start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from relay.credentials import CREDENTIALS_FILE, CredentialsError, load_credentials


def test_config_tables_and_environment_combine(tmp_path: Path) -> None:
    configured = [{"access_key_id": "A", "secret_access_key": "sa"}]
    env = {"RELAY_ACCESS_KEY_ID": "B", "RELAY_SECRET_ACCESS_KEY": "sb"}
    credentials = load_credentials(configured, tmp_path, env)
    assert credentials.keys == {"A": "sa", "B": "sb"}
    assert credentials.generated is None
    override = load_credentials(configured, tmp_path, {**env, "RELAY_ACCESS_KEY_ID": "A"})
    assert override.keys == {"A": "sb"}
    assert not (tmp_path / CREDENTIALS_FILE).exists()


def test_a_pair_is_generated_once_kept_private_and_reused(tmp_path: Path) -> None:
    first = load_credentials([], tmp_path, {})
    assert first.generated is not None
    key_id, secret = first.generated
    assert first.keys == {key_id: secret}
    path = tmp_path / CREDENTIALS_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_credentials([], tmp_path, {})
    assert again.keys == first.keys
    assert again.generated is None, "the secret is announced on the first start only"


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    credentials = load_credentials(
        [{"access_key_id": "A", "secret_access_key": "very-secret"}], tmp_path, {}
    )
    assert "very-secret" not in repr(credentials)
    assert "very-secret" not in str(credentials)


@pytest.mark.parametrize(
    ("configured", "env"),
    [
        ([{"access_key_id": "A"}], {}),
        ([{"access_key_id": "", "secret_access_key": "s"}], {}),
        (["not a table"], {}),
        ([], {"RELAY_ACCESS_KEY_ID": "only-the-id"}),
    ],
)
def test_incomplete_credentials_are_refused(
    tmp_path: Path, configured: list[dict[str, str]], env: dict[str, str]
) -> None:
    with pytest.raises(CredentialsError):
        load_credentials(configured, tmp_path, env)
