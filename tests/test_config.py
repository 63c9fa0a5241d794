"""load_config: defaults, then the TOML file, then RELAY_* variables, then --data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relay.config import ConfigError, load_config

FULL_FILE = """
data_dir = "/srv/relay"

[engine]
chunk_size_bytes = 262144
unixfs_width = 174
max_puts_in_flight = 8
max_batch = 50
writer_idle_seconds = 2.5
read_prefetch = 2

[store]
kind = "memory"
pack_size_limit_bytes = 1048576
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_nothing_configured() -> None:
    config = load_config(environ={})
    # The defaults documented in relay/config.py's docstring.
    assert config.data_dir == Path("relay-data")
    assert config.engine.chunker.chunk_size_bytes == 1 << 20
    assert config.engine.chunker.max_puts_in_flight == 4
    assert config.engine.unixfs_width == 1024
    assert config.engine.max_batch == 1000
    assert config.engine.writer_idle_seconds == 30
    assert config.engine.read_prefetch == 4
    assert config.engine.read_ahead_bytes == 4 << 20
    assert config.engine.node_cache_bytes == 64 << 20
    assert config.engine.manifest_cache_bytes == 16 << 20
    assert config.engine.summary_cache_bytes == 48 << 20
    assert (config.store.kind, config.store.pack_size_limit_bytes) == ("disk", 1 << 30)


def test_file_sets_every_setting(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_FILE), environ={})
    assert config.data_dir == Path("/srv/relay")
    assert config.engine.chunker.chunk_size_bytes == 262144
    assert config.engine.chunker.max_puts_in_flight == 8
    assert config.engine.unixfs_width == 174
    assert config.engine.max_batch == 50
    assert config.engine.writer_idle_seconds == 2.5
    assert config.engine.read_prefetch == 2
    assert (config.store.kind, config.store.pack_size_limit_bytes) == ("memory", 1 << 20)


def test_environment_overrides_the_file_setting_by_setting(tmp_path: Path) -> None:
    environ = {
        "RELAY_CHUNK_SIZE_BYTES": "65536",
        "RELAY_WRITER_IDLE_SECONDS": "7",
        "RELAY_STORE": "disk",
        "RELAY_DATA_DIR": "/env/data",
        "UNRELATED": "x",
    }
    config = load_config(write(tmp_path, FULL_FILE), environ=environ)
    assert config.engine.chunker.chunk_size_bytes == 65536
    assert config.engine.writer_idle_seconds == 7.0
    assert type(config.engine.writer_idle_seconds) is float
    assert config.store.kind == "disk"
    assert config.data_dir == Path("/env/data")
    assert config.engine.unixfs_width == 174  # untouched by the environment
    assert config.engine.chunker.max_puts_in_flight == 8


def test_environment_alone_sets_settings() -> None:
    config = load_config(environ={"RELAY_MAX_BATCH": "3", "RELAY_READ_PREFETCH": "9"})
    assert (config.engine.max_batch, config.engine.read_prefetch) == (3, 9)


def test_read_ahead_covers_one_downloads_prefetch_unless_set() -> None:
    config = load_config(environ={"RELAY_CHUNK_SIZE_BYTES": str(16 << 20)})
    assert config.engine.read_ahead_bytes == 3 * (16 << 20)  # prefetch 4: 3 beyond the next
    config = load_config(environ={"RELAY_READ_AHEAD_BYTES": "0"})
    assert config.engine.read_ahead_bytes == 0
    with pytest.raises(ConfigError, match="read_ahead_bytes"):
        load_config(environ={"RELAY_READ_AHEAD_BYTES": "-1"})


def test_cache_budgets_are_set_in_bytes() -> None:
    config = load_config(
        environ={
            "RELAY_NODE_CACHE_BYTES": "1000000",
            "RELAY_MANIFEST_CACHE_BYTES": "2000",
            "RELAY_SUMMARY_CACHE_BYTES": "3000",
        }
    )
    engine = config.engine
    assert (engine.node_cache_bytes, engine.manifest_cache_bytes) == (10**6, 2000)
    assert engine.summary_cache_bytes == 3000
    for name in ("NODE", "MANIFEST", "SUMMARY"):
        with pytest.raises(ConfigError, match=f"{name.lower()}_cache_bytes must be positive"):
            load_config(environ={f"RELAY_{name}_CACHE_BYTES": "0"})


def test_data_dir_argument_overrides_file_and_environment(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, FULL_FILE),
        environ={"RELAY_DATA_DIR": "/env/data"},
        data_dir=tmp_path / "cli",
    )
    assert config.data_dir == tmp_path / "cli"


def test_integer_file_value_for_a_float_setting_becomes_a_float(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[engine]\nwriter_idle_seconds = 5\n"), environ={})
    assert type(config.engine.writer_idle_seconds) is float


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ('[engine]\nchunk_size_bytes = "big"\n', "chunk_size_bytes"),
        ("[engine]\nchunk_size_bytes = 16384.5\n", "chunk_size_bytes"),
        ("[engine]\nmax_batch = true\n", "max_batch"),
        ('[engine]\nwriter_idle_seconds = "soon"\n', "writer_idle_seconds"),
        ("[store]\nkind = 1\n", "kind"),
        ("data_dir = 5\n", "data_dir"),
    ],
)
def test_wrongly_typed_file_value_names_the_setting(
    tmp_path: Path, text: str, setting: str
) -> None:
    with pytest.raises(ConfigError, match=setting):
        load_config(write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    "variable",
    [
        "RELAY_CHUNK_SIZE_BYTES",
        "RELAY_MAX_BATCH",
        "RELAY_WRITER_IDLE_SECONDS",
        "RELAY_UNIXFS_WIDTH",
    ],
)
def test_unparseable_environment_value_names_the_variable(variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_config(environ={variable: "lots"})


RANGE_ERRORS = [
    pytest.param("unixfs_width", "1", id="unixfs_width"),
    pytest.param("max_batch", "0", id="max_batch"),
    pytest.param(
        "chunk_size_bytes",
        "16383",
        id="chunk_size_bytes",
    ),
    pytest.param(
        "max_puts_in_flight",
        "0",
        id="max_puts_in_flight",
    ),
    pytest.param("upload_memory_bytes", "65536", id="upload_memory_bytes-below-a-chunk"),
    pytest.param(
        "writer_idle_seconds",
        "-1",
        id="writer_idle_seconds-negative",
    ),
    pytest.param(
        "writer_idle_seconds",
        "nan",
        id="writer_idle_seconds-nan",
    ),
    pytest.param(
        "pack_size_limit_bytes",
        "0",
        id="pack_size_limit_bytes",
    ),
]


@pytest.mark.parametrize(("setting", "value"), RANGE_ERRORS)
def test_out_of_range_value_names_the_setting(tmp_path: Path, setting: str, value: str) -> None:
    section = "store" if setting == "pack_size_limit_bytes" else "engine"
    text = f"[{section}]\n{setting} = {value}\n"  # TOML spells NaN as nan
    with pytest.raises(ConfigError, match=setting):
        load_config(write(tmp_path, text), environ={})


@pytest.mark.parametrize("size", ["16383", "16777217"])
def test_chunk_size_outside_16k_to_16m_is_refused(size: str) -> None:
    with pytest.raises(ConfigError, match="chunk_size_bytes"):
        load_config(environ={"RELAY_CHUNK_SIZE_BYTES": size})


def test_chunk_size_bounds_are_accepted() -> None:
    for size in (16 << 10, 16 << 20):
        config = load_config(environ={"RELAY_CHUNK_SIZE_BYTES": str(size)})
        assert config.engine.chunker.chunk_size_bytes == size


@pytest.mark.parametrize("kind", ["s3", "Disk", ""])
def test_unknown_store_kind_is_refused(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ConfigError, match="store kind"):
        load_config(environ={"RELAY_STORE": kind})
    with pytest.raises(ConfigError, match="store kind"):
        load_config(write(tmp_path, f'[store]\nkind = "{kind}"\n'), environ={})


def test_unreadable_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(write(tmp_path, "[engine\nchunk_size_bytes = 1"), environ={})


def test_section_that_is_not_a_table_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="engine"):
        load_config(write(tmp_path, "engine = 5\n"), environ={})


def test_upload_memory_sets_the_size_of_the_shared_buffer_pool() -> None:
    config = load_config(environ={"RELAY_UPLOAD_MEMORY_BYTES": str(24 << 20)})
    assert config.engine.chunker.upload_memory_bytes == 24 << 20
    assert config.engine.chunker.pooled_buffers == 24
    assert load_config(environ={}).engine.chunker.pooled_buffers == 12


def test_domains_for_virtual_hosted_addressing(tmp_path: Path) -> None:
    assert load_config(environ={}).domains == ()
    from_environment = load_config(environ={"RELAY_DOMAINS": " S3.Example.com, s3.local. ,"})
    assert from_environment.domains == ("s3.example.com", "s3.local")
    path = tmp_path / "relay.toml"
    path.write_text('[http]\ndomains = ["s3.example.com", "files.example.org"]\n')
    assert load_config(path, environ={}).domains == ("s3.example.com", "files.example.org")
    path.write_text('[http]\ndomains = "s3.example.com"\n')
    assert load_config(path, environ={}).domains == ("s3.example.com",)
    for bad in ("s3.example.com:9000", "http://s3.example.com", "a..b", ".example.com"):
        with pytest.raises(ConfigError, match=r"http\.domains"):
            load_config(environ={"RELAY_DOMAINS": bad})
    path.write_text("[http]\ndomains = 3\n")
    with pytest.raises(ConfigError, match="list of names"):
        load_config(path, environ={})


def test_workers_default_to_the_cpus_and_are_set_by_file_environment_and_option(
    tmp_path: Path,
) -> None:
    config = load_config(environ={})
    assert config.workers is None
    assert config.worker_count == len(os.sched_getaffinity(0))
    path = write(tmp_path, "workers = 3\n")
    assert load_config(path, environ={}).worker_count == 3
    assert load_config(path, environ={"RELAY_WORKERS": "5"}).worker_count == 5
    assert load_config(path, environ={"RELAY_WORKERS": "5"}, workers=1).worker_count == 1
    for wrong in ("0", "-2"):
        with pytest.raises(ConfigError, match="workers must be at least 1"):
            load_config(environ={"RELAY_WORKERS": wrong})
    with pytest.raises(ConfigError, match="RELAY_WORKERS must be a int"):
        load_config(environ={"RELAY_WORKERS": "many"})


def test_the_memory_store_runs_one_process() -> None:
    memory = {"RELAY_STORE": "memory"}
    assert load_config(environ=memory).worker_count == 1  # the default follows the store
    with pytest.raises(ConfigError, match="store kind memory keeps blobs in one process"):
        load_config(environ=memory, workers=2)


def test_space_and_scrub_settings_have_defaults_and_are_set_from_file_or_environment(
    tmp_path: Path,
) -> None:
    defaults = load_config(environ={})
    assert defaults.store.reserve_bytes == 16 << 20
    assert defaults.store.compact_live_fraction == 0.8
    assert defaults.gc.scrub_bytes_per_second == 16 << 20
    path = tmp_path / "relay.toml"
    path.write_text(
        "[store]\nreserve_bytes = 0\ncompact_live_fraction = 0.5\n"
        "[gc]\nscrub_bytes_per_second = 0\n"
    )
    config = load_config(path, environ={"RELAY_GC_SCRUB_BYTES_PER_SECOND": "1000"})
    assert config.store.reserve_bytes == 0
    assert config.store.compact_live_fraction == 0.5
    assert config.gc.scrub_bytes_per_second == 1000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RELAY_STORE_RESERVE_BYTES", "-1"),
        ("RELAY_STORE_COMPACT_LIVE_FRACTION", "0"),
        ("RELAY_STORE_COMPACT_LIVE_FRACTION", "1.5"),
        ("RELAY_GC_SCRUB_BYTES_PER_SECOND", "-5"),
    ],
)
def test_space_and_scrub_settings_out_of_range_are_refused(variable: str, value: str) -> None:
    with pytest.raises(ConfigError):
        load_config(environ={variable: value})
