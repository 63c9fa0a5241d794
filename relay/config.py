"""relay's settings, in one place: a TOML file, then ``RELAY_*`` environment variables.

Every setting has a default that works with nothing configured (local disk + SQLite under
``./relay-data``). The file is optional; the environment overrides the file; command-line
options (``--data``) override both. Units are in the names.

    data_dir = "relay-data"

    [engine]
    chunk_size_bytes = 1048576     # RELAY_CHUNK_SIZE_BYTES (16 KiB .. 16 MiB)
    unixfs_width = 1024            # RELAY_UNIXFS_WIDTH
    max_puts_in_flight = 4         # RELAY_MAX_PUTS_IN_FLIGHT (per upload)
    max_batch = 1000               # RELAY_MAX_BATCH (mutations per commit)
    writer_idle_seconds = 30       # RELAY_WRITER_IDLE_SECONDS
    read_prefetch = 4              # RELAY_READ_PREFETCH (chunks ahead per download)

    [store]
    kind = "disk"                  # RELAY_STORE: "disk" (default) or "memory"
    pack_size_limit_bytes = 1073741824   # RELAY_PACK_SIZE_LIMIT_BYTES
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from relay.bucket.engine import EngineConfig
from relay.chunker import ChunkerConfig

DEFAULT_DATA_DIR: Final = Path("relay-data")
STORE_KINDS: Final = ("disk", "memory")


class ConfigError(ValueError):
    """A setting that is missing, of the wrong type or out of range."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    kind: str = "disk"
    pack_size_limit_bytes: int = 1 << 30


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = DEFAULT_DATA_DIR
    engine: EngineConfig = field(default_factory=EngineConfig)
    store: StoreConfig = field(default_factory=StoreConfig)


DEFAULT_CHUNKER: Final = ChunkerConfig()
DEFAULT_STORE: Final = StoreConfig()

# setting name -> (environment variable, section, type)
_SETTINGS: Final[dict[str, tuple[str, str, type]]] = {
    "data_dir": ("RELAY_DATA_DIR", "", str),
    "chunk_size_bytes": ("RELAY_CHUNK_SIZE_BYTES", "engine", int),
    "unixfs_width": ("RELAY_UNIXFS_WIDTH", "engine", int),
    "max_puts_in_flight": ("RELAY_MAX_PUTS_IN_FLIGHT", "engine", int),
    "max_batch": ("RELAY_MAX_BATCH", "engine", int),
    "writer_idle_seconds": ("RELAY_WRITER_IDLE_SECONDS", "engine", float),
    "read_prefetch": ("RELAY_READ_PREFETCH", "engine", int),
    "kind": ("RELAY_STORE", "store", str),
    "pack_size_limit_bytes": ("RELAY_PACK_SIZE_LIMIT_BYTES", "store", int),
}


def _typed(name: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and kind is not str:
        try:
            return kind(value)
        except ValueError:
            raise ConfigError(f"{name} must be a {kind.__name__}, not {value!r}") from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{name} must be a {kind.__name__}, not {value!r}")
    return value


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    data_dir: Path | None = None,
) -> Config:
    """Defaults, then the TOML file at ``path`` (if any), then ``RELAY_*`` variables, then
    ``data_dir`` (the ``--data`` option)."""
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    for name, (variable, section, kind) in _SETTINGS.items():
        table = document if not section else document.get(section, {})
        if name in table:
            values[name] = _typed(name, table[name], kind)
        if variable in environ:
            values[name] = _typed(variable, environ[variable], kind)
    if data_dir is not None:
        values["data_dir"] = str(data_dir)
    try:
        chunker = ChunkerConfig(
            chunk_size_bytes=values.get("chunk_size_bytes", DEFAULT_CHUNKER.chunk_size_bytes),
            max_puts_in_flight=values.get("max_puts_in_flight", DEFAULT_CHUNKER.max_puts_in_flight),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    engine = replace(
        EngineConfig(chunker=chunker),
        **{
            name: values[name]
            for name in ("unixfs_width", "max_batch", "writer_idle_seconds", "read_prefetch")
            if name in values
        },
    )
    if engine.unixfs_width < 2:
        raise ConfigError("unixfs_width must be at least 2")
    if engine.max_batch < 1:
        raise ConfigError("max_batch must be at least 1")
    store = StoreConfig(
        kind=values.get("kind", DEFAULT_STORE.kind),
        pack_size_limit_bytes=values.get(
            "pack_size_limit_bytes", DEFAULT_STORE.pack_size_limit_bytes
        ),
    )
    if store.kind not in STORE_KINDS:
        raise ConfigError(f"store kind must be one of {', '.join(STORE_KINDS)}")
    return Config(Path(values.get("data_dir", DEFAULT_DATA_DIR)), engine, store)
