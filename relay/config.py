"""relay's settings, in one place: a TOML file, then ``RELAY_*`` environment variables.

Every setting has a default that works with nothing configured (local disk + SQLite under
``./relay-data``). The file is optional; the environment overrides the file; command-line
options (``--data``) override both. Units are in the names.

    data_dir = "relay-data"

    [engine]
    chunk_size_bytes = 1048576     # RELAY_CHUNK_SIZE_BYTES (16 KiB .. 16 MiB)
    unixfs_width = 1024            # RELAY_UNIXFS_WIDTH
    max_puts_in_flight = 4         # RELAY_MAX_PUTS_IN_FLIGHT (per upload)
    upload_memory_bytes = 12582912 # RELAY_UPLOAD_MEMORY_BYTES (all uploads' chunks in flight)
    max_batch = 1000               # RELAY_MAX_BATCH (mutations per commit)
    writer_idle_seconds = 30       # RELAY_WRITER_IDLE_SECONDS
    read_prefetch = 4              # RELAY_READ_PREFETCH (chunks ahead per download)
    read_ahead_bytes = 4194304     # RELAY_READ_AHEAD_BYTES (all reads' chunks fetched ahead)
    node_cache_bytes = 67108864    # RELAY_NODE_CACHE_BYTES (decoded MST nodes, all buckets)
    manifest_cache_bytes = 16777216  # RELAY_MANIFEST_CACHE_BYTES (decoded manifests)
    summary_cache_bytes = 50331648   # RELAY_SUMMARY_CACHE_BYTES (what listings show of objects)
    multipart_cid_budget_bytes = 1073741824  # RELAY_MULTIPART_CID_BUDGET_BYTES

    [store]
    kind = "disk"                  # RELAY_STORE: "disk" (default), "memory", "s3" or "piri"
    pack_size_limit_bytes = 1073741824   # RELAY_PACK_SIZE_LIMIT_BYTES
    reserve_bytes = 16777216       # RELAY_STORE_RESERVE_BYTES (kept for deletes on a full disk)
    compact_live_fraction = 0.8    # RELAY_STORE_COMPACT_LIVE_FRACTION (compact packs less live)

    [store.s3]                     # kind = "s3": each blob one object in an upstream bucket
    endpoint = "https://<account>.r2.cloudflarestorage.com"  # RELAY_S3_ENDPOINT (required)
    region = "auto"                # RELAY_S3_REGION (default us-east-1)
    bucket = "relay-blobs"         # RELAY_S3_BUCKET (required)
    prefix = ""                    # RELAY_S3_PREFIX (key prefix)
    access_key_id = "..."          # RELAY_S3_ACCESS_KEY_ID (required)
    secret_access_key = "..."      # RELAY_S3_SECRET_ACCESS_KEY (required)

    [store.piri]                   # kind = "piri": each blob stored on a piri node
    endpoint = "http://127.0.0.1:3000"  # RELAY_PIRI_ENDPOINT (required)
    did = "did:key:z6Mk..."        # RELAY_PIRI_DID (required: the piri node's DID)
    delegation = "m..."            # RELAY_PIRI_DELEGATION (what `piri delegate generate
    delegation_file = "path"       # RELAY_PIRI_DELEGATION_FILE   --client-did` printed)
    key_file = "relay.pem"         # RELAY_PIRI_KEY_FILE (relay's key; in data_dir if relative)
    space = "did:key:..."          # RELAY_PIRI_SPACE (default: relay's own DID)

    listen = "127.0.0.1:9000"      # RELAY_LISTEN
    workers = 4                    # RELAY_WORKERS (relay serve --workers): processes serving
                                   #   the port(s); default: the CPUs this process may use
    region = "us-east-1"           # RELAY_REGION (what SigV4 scopes and GetBucketLocation say)

    [http]
    header_timeout_seconds = 30          # RELAY_HTTP_HEADER_TIMEOUT_SECONDS
    body_stall_timeout_seconds = 60      # RELAY_HTTP_BODY_STALL_TIMEOUT_SECONDS
    body_min_bytes_per_second = 512      # RELAY_HTTP_BODY_MIN_BYTES_PER_SECOND
    keepalive_idle_timeout_seconds = 75  # RELAY_HTTP_KEEPALIVE_IDLE_TIMEOUT_SECONDS
    max_header_bytes = 65536             # RELAY_HTTP_MAX_HEADER_BYTES
    max_connections = 1024               # RELAY_HTTP_MAX_CONNECTIONS (then 503 SlowDown)
    shutdown_grace_seconds = 30          # RELAY_HTTP_SHUTDOWN_GRACE_SECONDS
    domains = ["s3.example.com"]         # RELAY_DOMAINS (comma-separated): virtual-hosted
                                         # BUCKET.s3.example.com names the bucket

    [log]
    level = "info"                 # RELAY_LOG_LEVEL (relay serve --log-level): debug, info,
                                   #   warning (no request lines), error
    format = "text"                # RELAY_LOG_FORMAT (--log-format): text or json

    [registry]                     # buckets' roots, commit log, multipart state, claims
    url = ""                       # RELAY_REGISTRY_URL (--registry-url): empty = SQLite in
                                   #   data_dir; or postgresql://user:password@host/db (many
                                   #   hosts; needs store kind s3 or piri)
    connect_timeout_seconds = 5    # RELAY_REGISTRY_CONNECT_TIMEOUT_SECONDS
    statement_timeout_seconds = 30 # RELAY_REGISTRY_STATEMENT_TIMEOUT_SECONDS
    network_timeout_seconds = 10   # RELAY_REGISTRY_NETWORK_TIMEOUT_SECONDS
    pool_size = 8                  # RELAY_REGISTRY_POOL_SIZE (connections per process)

    [gc]                           # history retention, garbage collection (relay.bucket.gc)
    history_retention_seconds = 86400  # RELAY_GC_HISTORY_RETENTION_SECONDS (past versions kept)
    grace_seconds = 3600           # RELAY_GC_GRACE_SECONDS (a younger blob is never swept)
    interval_seconds = 3600        # RELAY_GC_INTERVAL_SECONDS (relay serve collects; 0: never)
    operations_per_second = 1000   # RELAY_GC_OPERATIONS_PER_SECOND (background rate; 0: no cap)
    scrub_bytes_per_second = 16777216  # RELAY_GC_SCRUB_BYTES_PER_SECOND (disk scrub; 0: off)
    [admin]                        # /metrics, /health/live, /health/ready; off unless set
    listen = "127.0.0.1:9090"      # RELAY_ADMIN_LISTEN (relay serve --admin HOST:PORT)

    [[credentials]]                # any number; RELAY_ACCESS_KEY_ID / RELAY_SECRET_ACCESS_KEY
    access_key_id = "..."          # add one; with none, a pair is generated on first start
    secret_access_key = "..."

    [roundabout]                   # off unless listen is set; see relay.roundabout.config
    listen = "10.0.0.5:9100"       # RELAY_ROUNDABOUT_LISTEN (relay serve --roundabout)
    require_auth = false           # RELAY_ROUNDABOUT_REQUIRE_AUTH
    [[roundabout.buckets]]         # endpoint, bucket, region, access_key_id,
    [[roundabout.domains]]         # secret_access_key...; domain, endpoint, bucket, prefix
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from relay.bucket import EngineConfig, GcConfig
from relay.chunker import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, ChunkerConfig
from relay.http import HttpConfig
from relay.observe.requests import LOG_FORMATS, LOG_LEVELS
from relay.registry.config import RegistryConfig, RegistryUrlError
from relay.roundabout.config import RoundaboutConfig, RoundaboutConfigError, parse_roundabout
from relay.store.piri_config import PiriStoreConfig
from relay.store.s3 import S3StoreConfig

DEFAULT_DATA_DIR: Final = Path("relay-data")
DEFAULT_LISTEN: Final = "127.0.0.1:9000"
STORE_KINDS: Final = ("disk", "memory", "s3", "piri")


class ConfigError(ValueError):
    """A setting that is missing, of the wrong type or out of range."""


class IncompatibleSettings(ConfigError):
    """Settings each valid alone that cannot work together (the CLI's usage error)."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    kind: str = "disk"
    pack_size_limit_bytes: int = 1 << 30
    reserve_bytes: int = 16 << 20  # disk: RESERVE, spent by commits on a full disk
    compact_live_fraction: float = 0.8  # disk: packs less live than this are compacted
    s3: S3StoreConfig | None = None  # set exactly when kind == "s3"
    piri: PiriStoreConfig | None = None  # set exactly when kind == "piri"


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"  # request lines are written at info
    format: str = "text"


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = DEFAULT_DATA_DIR
    engine: EngineConfig = field(default_factory=EngineConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    listen: str = DEFAULT_LISTEN
    region: str = "us-east-1"
    http: HttpConfig = field(default_factory=HttpConfig)
    credentials: list[dict[str, str]] = field(default_factory=list, repr=False)
    roundabout: RoundaboutConfig = field(default_factory=RoundaboutConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # HOST:PORT of the admin listener (metrics and health), or None for none.
    admin_listen: str | None = None
    # relay's own host names (http.domains): a Host of BUCKET.<domain> names the bucket.
    domains: tuple[str, ...] = ()
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    # Worker processes serving the listeners, or None for one per CPU (``serve_workers``).
    workers: int | None = None

    @property
    def worker_count(self) -> int:
        """How many processes ``relay serve`` runs: ``workers``, or the CPUs it may use
        (one with the memory store, whose blobs live in one process)."""
        if self.workers is not None:
            return self.workers
        return 1 if self.store.kind == "memory" else available_cpus()

    gc: GcConfig = field(default_factory=GcConfig)

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as a container limits it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"listen must be HOST:PORT, not {value!r}") from None
    if not host or not 0 <= number <= 65535:
        raise ConfigError(f"listen must be HOST:PORT, not {value!r}")
    return host.strip("[]"), number


DEFAULT_CHUNKER: Final = ChunkerConfig()
DEFAULT_STORE: Final = StoreConfig()

# setting name -> (environment variable, section, type)
_SETTINGS: Final[dict[str, tuple[str, str, type]]] = {
    "data_dir": ("RELAY_DATA_DIR", "", str),
    "chunk_size_bytes": ("RELAY_CHUNK_SIZE_BYTES", "engine", int),
    "unixfs_width": ("RELAY_UNIXFS_WIDTH", "engine", int),
    "max_puts_in_flight": ("RELAY_MAX_PUTS_IN_FLIGHT", "engine", int),
    "upload_memory_bytes": ("RELAY_UPLOAD_MEMORY_BYTES", "engine", int),
    "max_batch": ("RELAY_MAX_BATCH", "engine", int),
    "writer_idle_seconds": ("RELAY_WRITER_IDLE_SECONDS", "engine", float),
    "read_prefetch": ("RELAY_READ_PREFETCH", "engine", int),
    "read_ahead_bytes": ("RELAY_READ_AHEAD_BYTES", "engine", int),
    "node_cache_bytes": ("RELAY_NODE_CACHE_BYTES", "engine", int),
    "manifest_cache_bytes": ("RELAY_MANIFEST_CACHE_BYTES", "engine", int),
    "summary_cache_bytes": ("RELAY_SUMMARY_CACHE_BYTES", "engine", int),
    "multipart_cid_budget_bytes": ("RELAY_MULTIPART_CID_BUDGET_BYTES", "engine", int),
    "kind": ("RELAY_STORE", "store", str),
    "pack_size_limit_bytes": ("RELAY_PACK_SIZE_LIMIT_BYTES", "store", int),
    "reserve_bytes": ("RELAY_STORE_RESERVE_BYTES", "store", int),
    "compact_live_fraction": ("RELAY_STORE_COMPACT_LIVE_FRACTION", "store", float),
    "listen": ("RELAY_LISTEN", "", str),
    "workers": ("RELAY_WORKERS", "", int),
    "region": ("RELAY_REGION", "", str),
    "header_timeout_seconds": ("RELAY_HTTP_HEADER_TIMEOUT_SECONDS", "http", float),
    "body_stall_timeout_seconds": ("RELAY_HTTP_BODY_STALL_TIMEOUT_SECONDS", "http", float),
    "body_min_bytes_per_second": ("RELAY_HTTP_BODY_MIN_BYTES_PER_SECOND", "http", float),
    "keepalive_idle_timeout_seconds": ("RELAY_HTTP_KEEPALIVE_IDLE_TIMEOUT_SECONDS", "http", float),
    "max_header_bytes": ("RELAY_HTTP_MAX_HEADER_BYTES", "http", int),
    "max_connections": ("RELAY_HTTP_MAX_CONNECTIONS", "http", int),
    "shutdown_grace_seconds": ("RELAY_HTTP_SHUTDOWN_GRACE_SECONDS", "http", float),
    "domains": ("RELAY_DOMAINS", "http", tuple),
    "history_retention_seconds": ("RELAY_GC_HISTORY_RETENTION_SECONDS", "gc", float),
    "grace_seconds": ("RELAY_GC_GRACE_SECONDS", "gc", float),
    "interval_seconds": ("RELAY_GC_INTERVAL_SECONDS", "gc", float),
    "operations_per_second": ("RELAY_GC_OPERATIONS_PER_SECOND", "gc", float),
    "scrub_bytes_per_second": ("RELAY_GC_SCRUB_BYTES_PER_SECOND", "gc", int),
}
# [store.s3] setting -> environment variable (all strings); required ones have no default.
_S3_SETTINGS: Final[dict[str, str]] = {
    "endpoint": "RELAY_S3_ENDPOINT",
    "region": "RELAY_S3_REGION",
    "bucket": "RELAY_S3_BUCKET",
    "prefix": "RELAY_S3_PREFIX",
    "access_key_id": "RELAY_S3_ACCESS_KEY_ID",
    "secret_access_key": "RELAY_S3_SECRET_ACCESS_KEY",
}
_S3_DEFAULTS: Final[dict[str, str]] = {"region": "us-east-1", "prefix": ""}
# [store.piri] setting -> environment variable (all strings).
_PIRI_SETTINGS: Final[dict[str, str]] = {
    "endpoint": "RELAY_PIRI_ENDPOINT",
    "did": "RELAY_PIRI_DID",
    "delegation": "RELAY_PIRI_DELEGATION",
    "delegation_file": "RELAY_PIRI_DELEGATION_FILE",
    "key_file": "RELAY_PIRI_KEY_FILE",
    "space": "RELAY_PIRI_SPACE",
}
_HTTP_SETTINGS: Final = (
    "header_timeout_seconds",
    "body_stall_timeout_seconds",
    "body_min_bytes_per_second",
    "keepalive_idle_timeout_seconds",
    "max_header_bytes",
    "max_connections",
    "shutdown_grace_seconds",
)


def _typed(name: str, value: Any, kind: type) -> Any:
    if kind is tuple:  # a list of names: a TOML array, or one comma-separated string
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{name} must be a list of names, not {value!r}")
        return tuple(item.strip() for item in items if item.strip())
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


def _table(document: dict[str, Any], section: str) -> dict[str, Any]:
    if not section:
        return document
    table = document.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] must be a table")
    return table


def _check_known(document: dict[str, Any]) -> None:
    """Refuse unknown keys: a typo must not silently leave a default in place."""
    known: dict[str, set[str]] = {}
    for name, (_variable, section, _kind) in _SETTINGS.items():
        known.setdefault(section, set()).add(name)
    for key, value in document.items():
        # Their own parsers check these tables.
        if key in ("credentials", "roundabout", "log", "admin", "registry"):
            continue
        if key in known and isinstance(value, dict):
            for inner in value:
                if key == "store" and inner in ("s3", "piri"):
                    continue  # checked by _s3_table and _piri_table
                if inner not in known[key]:
                    raise ConfigError(f"unknown setting {key}.{inner}")
        elif key not in known[""]:
            raise ConfigError(f"unknown setting {key}")


def _s3_table(document: dict[str, Any]) -> dict[str, Any]:
    table = _table(_table(document, "store"), "s3")
    if not isinstance(table, dict):
        raise ConfigError("[store.s3] must be a table")
    for name in table:
        if name not in _S3_SETTINGS:
            raise ConfigError(f"unknown setting store.s3.{name}")
    return table


def _s3_config(document: dict[str, Any], environ: Mapping[str, str]) -> S3StoreConfig:
    """The ``[store.s3]`` table and ``RELAY_S3_*``: every setting a string, the environment
    winning; a missing required one is named with both spellings."""
    table = _s3_table(document)
    values = dict(_S3_DEFAULTS)
    for name, variable in _S3_SETTINGS.items():
        if name in table:
            values[name] = _typed(f"store.s3.{name}", table[name], str)
        if variable in environ:
            values[name] = environ[variable]
    for name, variable in _S3_SETTINGS.items():
        if name not in values or (not values[name] and name not in _S3_DEFAULTS):
            raise ConfigError(f"store kind s3 needs store.s3.{name} ({variable})")
    try:
        return S3StoreConfig(
            endpoint=values["endpoint"],
            bucket=values["bucket"],
            access_key_id=values["access_key_id"],
            secret_access_key=values["secret_access_key"],
            region=values["region"],
            prefix=values["prefix"],
        )
    except ValueError as exc:
        raise ConfigError(f"[store.s3]: {exc}") from None


def _piri_table(document: dict[str, Any]) -> dict[str, Any]:
    table = _table(_table(document, "store"), "piri")
    for name in table:
        if name not in _PIRI_SETTINGS:
            raise ConfigError(f"unknown setting store.piri.{name}")
    return table


def _piri_config(document: dict[str, Any], environ: Mapping[str, str]) -> PiriStoreConfig:
    """The ``[store.piri]`` table and ``RELAY_PIRI_*``, the environment winning. The
    delegation (text or file) may be missing here: ``relay did`` runs before there is one;
    opening the store demands it."""
    table = _piri_table(document)
    values: dict[str, str] = {}
    for name, variable in _PIRI_SETTINGS.items():
        if name in table:
            values[name] = _typed(f"store.piri.{name}", table[name], str)
        if variable in environ:
            values[name] = environ[variable]
    for name in ("endpoint", "did"):
        if not values.get(name):
            raise ConfigError(f"store kind piri needs store.piri.{name} ({_PIRI_SETTINGS[name]})")
    if values.get("delegation") and values.get("delegation_file"):
        raise ConfigError("store.piri: give delegation or delegation_file, not both")
    try:
        return PiriStoreConfig(
            endpoint=values["endpoint"],
            did=values["did"],
            delegation=values.get("delegation") or None,
            delegation_file=values.get("delegation_file") or None,
            key_file=values.get("key_file") or "relay.pem",
            space=values.get("space") or None,
        )
    except ValueError as exc:
        raise ConfigError(f"[store.piri]: {exc}") from None


def _small_table(
    document: dict[str, Any],
    section: str,
    settings: Mapping[str, str],
    environ: Mapping[str, str],
    given: Mapping[str, str | None],
) -> dict[str, str]:
    """A table of string settings (``[log]``, ``[admin]``): the file, then its
    environment variable, then the command line's value, each winning over the last."""
    table = _table(document, section)
    values: dict[str, str] = {}
    for name in table:
        if name not in settings:
            raise ConfigError(f"unknown setting {section}.{name}")
    for name, variable in settings.items():
        if name in table:
            values[name] = _typed(f"{section}.{name}", table[name], str)
        if variable in environ:
            values[name] = environ[variable]
        if given.get(name) is not None:
            values[name] = str(given[name])
    return values


def _log_config(
    document: dict[str, Any], environ: Mapping[str, str], level: str | None, log_format: str | None
) -> LogConfig:
    values = _small_table(
        document,
        "log",
        {"level": "RELAY_LOG_LEVEL", "format": "RELAY_LOG_FORMAT"},
        environ,
        {"level": level, "format": log_format},
    )
    config = LogConfig(
        level=values.get("level", "info").lower(), format=values.get("format", "text").lower()
    )
    if config.level not in LOG_LEVELS:
        raise ConfigError(f"log.level must be one of {', '.join(LOG_LEVELS)}")
    if config.format not in LOG_FORMATS:
        raise ConfigError(f"log.format must be one of {', '.join(LOG_FORMATS)}")
    return config


def _domains(names: tuple[str, ...]) -> tuple[str, ...]:
    """http.domains as routing compares them: lowercase, no trailing dot; a name with a
    port, a scheme or an empty label is refused (the port is never part of the match)."""
    domains = []
    for raw in names:
        name = raw.lower().rstrip(".")
        labels = name.split(".")
        if not all(labels) or any(not set(label) <= _HOST_CHARACTERS for label in labels):
            raise ConfigError(f"http.domains: {raw!r} is not a host name (no port, no scheme)")
        domains.append(name)
    return tuple(domains)


_HOST_CHARACTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# [registry] setting -> (environment variable, type)
_REGISTRY_SETTINGS: Final[dict[str, tuple[str, type]]] = {
    "url": ("RELAY_REGISTRY_URL", str),
    "connect_timeout_seconds": ("RELAY_REGISTRY_CONNECT_TIMEOUT_SECONDS", float),
    "statement_timeout_seconds": ("RELAY_REGISTRY_STATEMENT_TIMEOUT_SECONDS", float),
    "network_timeout_seconds": ("RELAY_REGISTRY_NETWORK_TIMEOUT_SECONDS", float),
    "pool_size": ("RELAY_REGISTRY_POOL_SIZE", int),
}
# Stores whose blobs only this host (this process, for memory) can read.
_PER_HOST_STORES: Final = ("disk", "memory")


def _registry_config(
    document: dict[str, Any], environ: Mapping[str, str], url: str | None
) -> RegistryConfig:
    """``[registry]``, then ``RELAY_REGISTRY_*``, then ``--registry-url``. No message
    quotes the URL: it may hold a password."""
    table = _table(document, "registry")
    values: dict[str, Any] = {}
    for name in table:
        if name not in _REGISTRY_SETTINGS:
            raise ConfigError(f"unknown setting registry.{name}")
    for name, (variable, kind) in _REGISTRY_SETTINGS.items():
        if name in table:
            values[name] = _typed(f"registry.{name}", table[name], kind)
        if variable in environ:
            values[name] = _typed(variable, environ[variable], kind)
    if url is not None:
        values["url"] = url
    try:
        return RegistryConfig(**values)
    except RegistryUrlError as exc:
        raise ConfigError(str(exc)) from None


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    data_dir: Path | None = None,
    listen: str | None = None,
    roundabout: str | None = None,
    admin: str | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
    registry_url: str | None = None,
    workers: int | None = None,
) -> Config:
    """Defaults, then the TOML file at ``path`` (if any), then ``RELAY_*`` variables, then
    ``data_dir``, ``listen``, ``roundabout``, ``admin``, ``log_level``, ``log_format``,
    ``registry_url`` and ``workers`` (the ``--data``, ``--listen``, ``--roundabout``,
    ``--admin``, ``--log-level``, ``--log-format``, ``--registry-url`` and ``--workers``
    options)."""
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    for name, (variable, section, kind) in _SETTINGS.items():
        table = _table(document, section)
        if name in table:
            values[name] = _typed(name, table[name], kind)
        if variable in environ:
            values[name] = _typed(variable, environ[variable], kind)
    _check_known(document)
    _s3_table(document)
    _piri_table(document)
    if data_dir is not None:
        values["data_dir"] = str(data_dir)
    if listen is not None:
        values["listen"] = listen
    if workers is not None:
        values["workers"] = workers

    def setting(name: str, default: Any) -> Any:
        return values.get(name, default)

    chunk_size = setting("chunk_size_bytes", DEFAULT_CHUNKER.chunk_size_bytes)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ConfigError(f"chunk_size_bytes must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}")
    puts_in_flight = setting("max_puts_in_flight", DEFAULT_CHUNKER.max_puts_in_flight)
    if puts_in_flight < 1:
        raise ConfigError("max_puts_in_flight must be at least 1")
    # The default holds at least one chunk whatever the chunk size; a set value must.
    upload_memory = setting(
        "upload_memory_bytes", max(DEFAULT_CHUNKER.upload_memory_bytes, chunk_size)
    )
    if upload_memory < chunk_size:
        raise ConfigError("upload_memory_bytes must hold at least one chunk (chunk_size_bytes)")
    defaults = EngineConfig()
    read_prefetch = setting("read_prefetch", defaults.read_prefetch)
    # By default a lone download can read its whole prefetch ahead, whatever the chunk size.
    read_ahead = setting(
        "read_ahead_bytes", max(defaults.read_ahead_bytes, (read_prefetch - 1) * chunk_size)
    )
    engine = EngineConfig(
        chunker=ChunkerConfig(
            chunk_size_bytes=chunk_size,
            max_puts_in_flight=puts_in_flight,
            upload_memory_bytes=upload_memory,
        ),
        unixfs_width=setting("unixfs_width", defaults.unixfs_width),
        max_batch=setting("max_batch", defaults.max_batch),
        writer_idle_seconds=setting("writer_idle_seconds", defaults.writer_idle_seconds),
        read_prefetch=read_prefetch,
        read_ahead_bytes=read_ahead,
        node_cache_bytes=setting("node_cache_bytes", defaults.node_cache_bytes),
        manifest_cache_bytes=setting("manifest_cache_bytes", defaults.manifest_cache_bytes),
        summary_cache_bytes=setting("summary_cache_bytes", defaults.summary_cache_bytes),
        multipart_cid_budget_bytes=setting(
            "multipart_cid_budget_bytes", defaults.multipart_cid_budget_bytes
        ),
    )
    if engine.unixfs_width < 2:
        raise ConfigError("unixfs_width must be at least 2")
    if engine.max_batch < 1:
        raise ConfigError("max_batch must be at least 1")
    if not (math.isfinite(engine.writer_idle_seconds) and engine.writer_idle_seconds > 0):
        raise ConfigError("writer_idle_seconds must be a positive number of seconds")
    if engine.read_prefetch < 1:
        raise ConfigError("read_prefetch must be at least 1")
    if engine.read_ahead_bytes < 0:
        raise ConfigError("read_ahead_bytes must not be negative")
    for name in ("node_cache_bytes", "manifest_cache_bytes", "summary_cache_bytes"):
        if getattr(engine, name) < 1:
            raise ConfigError(f"{name} must be positive")
    if engine.multipart_cid_budget_bytes < 0:
        raise ConfigError("multipart_cid_budget_bytes must not be negative")
    gc_defaults = GcConfig()
    gc = GcConfig(
        **{
            name: setting(name, getattr(gc_defaults, name))
            for name in (
                "history_retention_seconds",
                "grace_seconds",
                "interval_seconds",
                "operations_per_second",
                "scrub_bytes_per_second",
            )
        }
    )
    for name in ("history_retention_seconds", "grace_seconds", "interval_seconds",
                 "operations_per_second", "scrub_bytes_per_second"):  # fmt: skip
        value = getattr(gc, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"gc.{name} must be a number, 0 or more")
    engine = replace(engine, history_retention_seconds=gc.history_retention_seconds)
    kind = setting("kind", DEFAULT_STORE.kind)
    store = StoreConfig(
        kind=kind,
        pack_size_limit_bytes=setting("pack_size_limit_bytes", DEFAULT_STORE.pack_size_limit_bytes),
        reserve_bytes=setting("reserve_bytes", DEFAULT_STORE.reserve_bytes),
        compact_live_fraction=setting("compact_live_fraction", DEFAULT_STORE.compact_live_fraction),
        s3=_s3_config(document, environ) if kind == "s3" else None,
        piri=_piri_config(document, environ) if kind == "piri" else None,
    )
    if store.kind not in STORE_KINDS:
        raise ConfigError(f"store kind must be one of {', '.join(STORE_KINDS)}")
    if store.pack_size_limit_bytes <= 0:
        raise ConfigError("pack_size_limit_bytes must be positive")
    if store.reserve_bytes < 0:
        raise ConfigError("reserve_bytes must not be negative")
    if not 0 < store.compact_live_fraction <= 1:
        raise ConfigError("compact_live_fraction must be above 0 and at most 1")
    try:
        http = HttpConfig(**{name: values[name] for name in _HTTP_SETTINGS if name in values})
    except ValueError as exc:
        raise ConfigError(f"[http]: {exc}") from None
    credentials = document.get("credentials", [])
    if not isinstance(credentials, list):
        raise ConfigError("[[credentials]] must be an array of tables")
    try:
        roundabout_config = parse_roundabout(document.get("roundabout"), environ, listen=roundabout)
    except RoundaboutConfigError as exc:
        raise ConfigError(str(exc)) from None
    admin_listen = _small_table(
        document, "admin", {"listen": "RELAY_ADMIN_LISTEN"}, environ, {"listen": admin}
    ).get("listen")
    registry = _registry_config(document, environ, registry_url)
    if registry.is_postgres and store.kind in _PER_HOST_STORES:
        raise IncompatibleSettings(
            f"registry.url names a PostgreSQL registry, shared by many hosts, but store.kind"
            f" = {store.kind!r} keeps blobs on this host only, where the others cannot read"
            ' them: use store.kind = "s3" or "piri" with PostgreSQL (or leave registry.url'
            " empty for SQLite in the data directory)"
        )
    config = Config(
        Path(setting("data_dir", DEFAULT_DATA_DIR)),
        engine,
        store,
        listen=setting("listen", DEFAULT_LISTEN),
        region=setting("region", "us-east-1"),
        http=http,
        credentials=credentials,
        roundabout=roundabout_config,
        log=_log_config(document, environ, log_level, log_format),
        admin_listen=admin_listen or None,
        domains=_domains(setting("domains", ())),
        registry=registry,
        workers=setting("workers", None),
        gc=gc,
    )
    if config.workers is not None and config.workers < 1:
        raise ConfigError("workers must be at least 1")
    if config.store.kind == "memory" and config.worker_count > 1:
        raise ConfigError(
            "store kind memory keeps blobs in one process: use workers = 1, or the disk store"
        )
    parse_listen(config.listen)
    if config.admin_listen is not None:
        parse_listen(config.admin_listen)
    if roundabout_config.listen is not None:
        parse_listen(roundabout_config.listen)
    return config
