"""Dependency direction (DESIGN §8, STYLE §1), read from the source with `ast`.

Each rule follows imports transitively through relay's own modules, so a pure core that
imports a relay module which imports trio breaks the rule as surely as ``import trio``.
Importing ``relay.x.y`` also runs ``relay/x/__init__.py``; that is followed too. The root
``relay/__init__.py`` loads the engine lazily (PEP 562), checked at the bottom.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

RELAY = Path(__file__).resolve().parent.parent / "relay"
PURE_CORES = [
    "relay.ipld",
    "relay.unixfs",
    "relay.mst",
    "relay.sigv4",
    "relay.ucan",
    "relay.access",
]
# Pure modules inside packages that also hold a trio shell.
PURE_MODULES = [
    "relay.roundabout.matching",
    "relay.roundabout.signing",
    "relay.roundabout.config",
    "relay.supervise",
]


def module_file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    package = RELAY.joinpath(*parts) / "__init__.py"
    if package.is_file():
        return package
    plain = RELAY.joinpath(*parts).with_suffix(".py")
    return plain if parts and plain.is_file() else None


def modules_in(package: str) -> list[str]:
    root = RELAY.joinpath(*package.split(".")[1:])
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(RELAY).with_suffix("").parts
        if relative[-1] == "__init__":
            relative = relative[:-1]
        found.append(".".join(("relay", *relative)))
    return found


def with_parents(module: str) -> list[str]:
    """``relay.a.b`` → ``relay.a``, ``relay.a.b`` (what importing it runs, minus the root)."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(2, len(parts) + 1)]


@cache
def direct_imports(module: str) -> frozenset[str]:
    path = module_file(module)
    if path is None:
        return frozenset()
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.add(source)
            # `from relay.ipld import dagcbor` imports the submodule relay.ipld.dagcbor
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return frozenset(names)


@cache
def transitive_imports(module: str) -> frozenset[str]:
    seen: set[str] = set()
    pending = [module]
    while pending:
        current = pending.pop()
        for name in direct_imports(current):
            targets = with_parents(name) if name.startswith("relay.") else [name]
            for target in targets:
                if target in seen:
                    continue
                seen.add(target)
                if target.startswith("relay.") and module_file(target) is not None:
                    pending.append(target)
    return frozenset(seen)


def offending(module: str, forbidden: list[str]) -> list[str]:
    return sorted(
        name
        for name in transitive_imports(module)
        if any(name == banned or name.startswith(banned + ".") for banned in forbidden)
    )


def test_the_import_walker_sees_through_relay_modules() -> None:
    # Controls: the walker must find trio where it is, directly and one module away.
    assert "trio" in transitive_imports("relay.store.memory")
    assert "trio" in transitive_imports("relay.store")  # via relay/store/__init__ → memory
    assert "relay.ipld.varint" in transitive_imports("relay.ipld.cid")
    assert len(modules_in("relay.ipld")) >= 8


@pytest.mark.parametrize(
    "module", [m for core in PURE_CORES for m in modules_in(core)] + PURE_MODULES, ids=lambda m: m
)
def test_pure_cores_never_import_trio(module: str) -> None:
    assert offending(module, ["trio"]) == []


# Pure cores inside relay.s3, whose face loads the app (so trio, and the transitive walk
# cannot tell): they import nothing of relay but its S3 errors and sigv4, and no trio.
PURE_S3_MODULES = ["relay.s3.corsrules", "relay.s3.formdata", "relay.s3.postpolicy"]


@pytest.mark.parametrize("module", PURE_S3_MODULES)
def test_pure_s3_cores_import_no_io(module: str) -> None:
    allowed = ("relay.s3.errors", "relay.sigv4")  # both free of trio and of I/O
    imported = direct_imports(module)
    assert [n for n in imported if n.startswith("relay.") and not n.startswith(allowed)] == []
    assert [n for n in imported if n == "trio" or n.startswith("trio.")] == []
    assert offending("relay.sigv4", ["trio"]) == []


@pytest.mark.parametrize(
    "module", [m for core in PURE_CORES for m in modules_in(core)], ids=lambda m: m
)
def test_formats_and_trees_do_no_io(module: str) -> None:
    assert offending(module, ["relay.store", "relay.bucket", "relay.registry"]) == []


@pytest.mark.parametrize("module", modules_in("relay.store"), ids=lambda m: m)
def test_store_never_imports_the_bucket_engine(module: str) -> None:
    assert offending(module, ["relay.bucket"]) == []


@pytest.mark.parametrize("core", PURE_CORES)
def test_importing_a_pure_core_does_not_load_trio(core: str) -> None:
    probe = f"import sys, {core}; print('trio' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "False"


@pytest.mark.parametrize("module", modules_in("relay.http"), ids=lambda m: m)
def test_the_http_server_knows_no_s3(module: str) -> None:
    assert offending(module, ["relay.s3", "relay.bucket", "relay.sigv4", "relay.store"]) == []


@pytest.mark.parametrize("module", modules_in("relay.bucket"), ids=lambda m: m)
def test_the_engine_knows_no_http_or_s3(module: str) -> None:
    assert offending(module, ["relay.s3", "relay.http", "relay.roundabout"]) == []


def loaded_by_a_plain_server(modules: tuple[str, ...]) -> str:
    """Which of ``modules`` a disk-store server with default settings has imported."""
    probe = (
        "import sys, relay.cli, relay.server, relay.storage, relay.s3.app, relay.config;"
        " relay.config.load_config(environ={});"
        f" print(sorted(m for m in {modules!r} if m in sys.modules))"
    )
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_disk_store_server_does_not_load_the_piri_stack() -> None:
    # The UCAN stack brings cryptography (~10 MiB resident); only a piri store needs it.
    assert loaded_by_a_plain_server(("cryptography", "relay.ucan", "relay.store.piri")) == "[]"


def test_a_server_on_sqlite_does_not_load_psycopg() -> None:
    # psycopg and its pool (a few MiB, and libpq) serve only a postgresql:// registry.url.
    assert loaded_by_a_plain_server(("psycopg", "psycopg_pool", "relay.registry.postgres")) == "[]"


# What each of relay's top-level packages and modules may import of relay's own (the table
# in ARCHITECTURE.md; arrows only point down). A new edge is a design decision: make it
# here and there together.
ALLOWED: dict[str, set[str]] = {
    "version": set(),
    "errorgroups": set(),
    "lru": set(),
    "ipld": set(),
    "access": set(),
    "unixfs": {"ipld"},
    "mst": {"ipld", "lru"},
    "ucan": {"ipld"},
    "sigv4": {"ipld"},
    "registry": {"ipld"},
    "store": {"ipld", "sigv4", "ucan"},
    "http": {"version"},
    "claims": {"ipld", "registry"},
    "chunker": {"ipld", "store", "errorgroups"},
    "bucket": {"chunker", "store", "registry", "mst", "unixfs", "ipld", "lru", "errorgroups"},
    "s3": {"access", "bucket", "chunker", "http", "sigv4", "ipld", "registry", "store"},
    "roundabout": {"http", "sigv4", "registry", "ipld"},
    "observe": {"http", "store", "version"},
    "credentials": set(),
    "supervise": set(),  # the supervisor's decisions: pure, no processes
    "config": {"bucket", "chunker", "http", "observe", "registry", "roundabout", "store"},
    "storage": {"bucket", "config", "registry", "store", "ucan"},
    "server": {
        "bucket",
        "config",
        "credentials",
        "http",
        "observe",
        "roundabout",
        "s3",
        "storage",
        "store",
    },
    "workers": {"config", "credentials", "http", "observe", "server", "storage", "supervise"},
    "cli": {
        "bucket",
        "chunker",
        "claims",
        "config",
        "credentials",
        "errorgroups",
        "observe",
        "registry",
        "server",
        "storage",
        "store",
        "unixfs",
        "version",
        "workers",
    },
    "__main__": {"cli"},
}


def top_level(name: str) -> str | None:
    """``relay.s3.objects`` → ``s3``; None for what is not one of relay's own."""
    parts = name.split(".")
    if parts[0] != "relay" or len(parts) < 2:
        return None
    candidate = parts[1]
    if (RELAY / candidate).is_dir() or (RELAY / f"{candidate}.py").is_file():
        return candidate
    return None


def test_every_top_level_package_has_a_row() -> None:
    found = {top_level(module) for module in modules_in("relay")} - {None}
    assert found == set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_the_rows_below_them(package: str) -> None:
    used: set[str] = set()
    for module in (
        modules_in(f"relay.{package}") if (RELAY / package).is_dir() else [f"relay.{package}"]
    ):
        for name in direct_imports(module):
            target = top_level(name)
            if target is not None and target != package:
                used.add(target)
    assert used <= ALLOWED[package], sorted(used - ALLOWED[package])


def test_the_embedding_api_exports_what_it_names_lazily() -> None:
    probe = (
        "import sys, relay; lazy = 'trio' not in sys.modules;"
        " names = [n for n in relay.__all__ if getattr(relay, n, None) is None];"
        " print(lazy, names, sorted(relay.__all__) == sorted(relay._EXPORTS))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert result == "True [] True"
    import relay

    assert {"serve", "open_storage", "load_config", "Engine"} <= set(relay.__all__)


@pytest.mark.parametrize(
    "package",
    ["relay.bucket", "relay.s3", "relay.http", "relay.observe", "relay.store", "relay.registry"],
)
def test_each_face_exports_what_it_names(package: str) -> None:
    """A package's ``__init__`` is its face: every name in ``__all__`` is there, and every
    public name it imports is in ``__all__`` (nothing offered by accident)."""
    face = importlib.import_module(package)
    exported = set(face.__all__)
    assert all(hasattr(face, name) for name in exported), sorted(
        name for name in exported if not hasattr(face, name)
    )
    tree = ast.parse((RELAY.joinpath(*package.split(".")[1:]) / "__init__.py").read_text())
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported - {"annotations"} == exported


def test_a_plain_server_does_not_load_what_only_some_requests_need() -> None:
    # Each is several MiB resident, against the 100 MiB peak-RSS goal: prometheus-client
    # (only with an admin listener), awscrt (only once a client asks for a CRC), tqdm (only
    # for a CLI progress bar).
    assert loaded_by_a_plain_server(("prometheus_client", "awscrt", "tqdm")) == "[]"
