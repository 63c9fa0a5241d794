"""The HTTP settings added for fair uploads load from TOML and the environment."""

from __future__ import annotations

from pathlib import Path

from relay.config import load_config


def test_the_body_rate_loads_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("[http]\nbody_min_bytes_per_second = 2048\n", encoding="utf-8")
    assert load_config(path, environ={}).http.body_min_bytes_per_second == 2048
    environ = {"RELAY_HTTP_BODY_MIN_BYTES_PER_SECOND": "100"}
    assert load_config(path, environ=environ).http.body_min_bytes_per_second == 100
