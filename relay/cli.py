"""The ``relay`` command: ``relay serve``, ``relay cid``, ``relay export``, ``relay log``,
``relay gc``, ``relay fsck``, ``relay claims import|export``, ``relay did``.

Every command that touches stored data takes ``--config FILE`` and ``--data DIR`` and
otherwise reads the ``RELAY_*`` environment (see ``relay.config``).

Failures a user can cause or meet (a missing bucket, a store another process holds, bad
arguments, an unreachable upstream) are one line on stderr and an exit code (``EXIT_*``
below, listed in the README); a traceback is printed only with ``--debug``. Long work
(export, claims import, gc, fsck) shows a progress bar when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from relay.bucket import (
    EngineError,
    GcProgress,
    NoSuchBucket,
    check_store,
    collect_garbage,
    export_bucket,
    is_retained,
    retention_cutoff_ms,
)
from relay.chunker import MAX_CHUNK_SIZE
from relay.claims import ClaimSyntaxError, format_claims, parse_claims
from relay.config import Config, ConfigError, IncompatibleSettings, load_config
from relay.credentials import CREDENTIALS_FILE, Credentials, CredentialsError, load_credentials
from relay.errorgroups import single_error
from relay.observe import LOG_FORMATS, LOG_LEVELS, configure_logging
from relay.registry import RegistryError
from relay.registry.base import now_ms
from relay.server import serve
from relay.storage import key_path, open_registry, open_storage, relay_signer
from relay.store.base import StoreError
from relay.store.httpclient import ConnectionFailed
from relay.unixfs import DEFAULT_CHUNK_SIZE, DEFAULT_WIDTH, file_cid
from relay.version import VERSION
from relay.workers import Bound, limit_malloc_arenas, stop_on_signals, supervise_workers

# Exit codes (the README lists them).
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # the command could not do its work; stderr says why in one line
EXIT_USAGE: Final = 2  # bad arguments (argparse's own code)
EXIT_INTERNAL: Final = 70  # a bug (EX_SOFTWARE): rerun with --debug for the traceback

# What a command may meet in normal use: reported in one line, never as a traceback.
_EXPECTED_FAILURES: Final = (
    ConfigError,
    CredentialsError,
    EngineError,
    ClaimSyntaxError,
    StoreError,
    ConnectionFailed,
    RegistryError,
    OSError,
)


class UsageError(Exception):
    """Arguments argparse accepted but the command cannot use (exit code 2)."""


class StoreDamaged(Exception):
    """fsck found damage and has printed it (exit code 1, nothing more to say)."""


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file")
    parser.add_argument("--data", type=Path, help="data directory (default ./relay-data)")
    parser.add_argument(
        "--registry-url",
        metavar="URL",
        help="postgresql://... to share buckets between hosts (default: SQLite in --data)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay", description="An S3 front door for content-addressed storage."
    )
    parser.add_argument("--version", action="version", version=f"relay {VERSION}")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of a failure, not one line"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve S3 on the configured store")
    _storage_options(serve)
    serve.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:9000)")
    serve.add_argument(
        "--roundabout",
        metavar="HOST:PORT",
        help="also serve roundabout (CID → 302 to a presigned URL) here (default: off)",
    )
    serve.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help="serve /metrics, /health/live and /health/ready here, unauthenticated (default: off)",
    )
    serve.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="debug, info (one line per request; the default), warning or error",
    )
    serve.add_argument("--log-format", choices=LOG_FORMATS, help="text (default) or json")
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes serving the port(s) (default: one per CPU; 1: no supervisor)",
    )

    cid = commands.add_parser(
        "cid",
        help="print a file's UnixFS root CID without storing anything",
        description="Like `ipfs add --only-hash --cid-version=1 --raw-leaves --chunker=size-N`:"
        " raw sha2-256 leaves, balanced DAG-PB nodes, CIDv1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cid.add_argument("file", type=Path, help="the file to hash")
    cid.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help="bytes per leaf, 1 to 16 MiB (ipfs: --chunker=size-N; 262144 is ipfs's default)",
    )
    cid.add_argument(
        "--width",
        type=int,
        default=DEFAULT_WIDTH,
        help="links per DAG-PB node (ipfs's default layout: 174)",
    )

    export = commands.add_parser("export", help="write a bucket as a CARv1")
    export.add_argument("bucket")
    export.add_argument("-o", "--output", type=Path, required=True, help="the CAR file")
    export.add_argument("--no-data", action="store_true", help="leave out the raw chunks")
    export.add_argument("--version", type=int, help="export this version of the bucket")
    _storage_options(export)

    ls = commands.add_parser("ls", help="list a bucket's objects (and their CIDs)")
    ls.add_argument("bucket")
    ls.add_argument("--prefix", default="")
    ls.add_argument(
        "--cids",
        action="store_true",
        help="also print each object's UnixFS root and the CIDs of its chunks",
    )
    _storage_options(ls)

    log = commands.add_parser("log", help="list a bucket's commits, newest first")
    log.add_argument("bucket")
    log.add_argument("-n", "--limit", type=int, default=20)
    _storage_options(log)

    gc = commands.add_parser(
        "gc",
        help="delete the blobs no retained root reaches (garbage collection)",
        description="Mark what every bucket's current root, the history within"
        " gc.history_retention_seconds, the pins and the open multipart uploads reach;"
        " delete every other blob older than gc.grace_seconds.",
    )
    gc.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted, delete nothing"
    )
    _storage_options(gc)

    fsck = commands.add_parser(
        "fsck",
        help="read back every block retained roots reach; exit 1 if any is missing or corrupt",
    )
    fsck.add_argument("buckets", nargs="*", metavar="BUCKET", help="only these (default: all)")
    fsck.add_argument("--json", action="store_true", help="print the report as one JSON document")
    _storage_options(fsck)

    claims = commands.add_parser("claims", help="import or export location claims (JSON lines)")
    claim_commands = claims.add_subparsers(dest="claims_command", required=True)
    claims_import = claim_commands.add_parser(
        "import", help="add the claims in FILE (all or nothing)"
    )
    claims_import.add_argument("file", help='a JSON-lines file, or "-" for stdin')
    _storage_options(claims_import)
    claims_export = claim_commands.add_parser("export", help="write every claim as JSON lines")
    claims_export.add_argument("-o", "--output", type=Path, help="the file (default stdout)")
    _storage_options(claims_export)

    did = commands.add_parser(
        "did",
        help="print relay's DID (its key is generated on first use), for piri delegations",
    )
    _storage_options(did)
    return parser


def _config(args: argparse.Namespace) -> Config:
    return load_config(
        args.config,
        data_dir=args.data,
        listen=getattr(args, "listen", None),
        roundabout=getattr(args, "roundabout", None),
        admin=getattr(args, "admin", None),
        log_level=getattr(args, "log_level", None),
        log_format=getattr(args, "log_format", None),
        registry_url=args.registry_url,
        workers=getattr(args, "workers", None),
    )


def _http_endpoint(bound: tuple[str, int]) -> str:
    host, port = bound
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _announce(
    config: Config,
    credentials: Credentials,
    bound: tuple[str, int],
    roundabout: tuple[str, int] | None = None,
    admin: tuple[str, int] | None = None,
    *,
    workers: int = 1,
) -> None:
    endpoint = _http_endpoint(bound)
    processes = f", {workers} workers" if workers > 1 else ""
    print(
        f"relay {VERSION}: serving S3 at {endpoint}"
        f" (data in {config.data_dir.resolve()}{processes})",
        flush=True,
    )
    if roundabout is not None:
        print(
            f"relay: serving roundabout at {_http_endpoint(roundabout)}"
            f" ({len(config.roundabout.buckets)} signing buckets,"
            f" auth {'required' if config.roundabout.require_auth else 'off'})",
            flush=True,
        )
    if admin is not None:
        print(
            f"relay: serving /metrics and /health at {_http_endpoint(admin)}"
            f" (log level {config.log.level}, {config.log.format})",
            flush=True,
        )
    if credentials.generated is not None:
        key_id, secret = credentials.generated
        print(
            "relay: generated an access key (shown once; kept in"
            f" {config.data_dir / CREDENTIALS_FILE}):\n"
            f"  export AWS_ACCESS_KEY_ID={key_id}\n"
            f"  export AWS_SECRET_ACCESS_KEY={secret}\n"
            f"  aws --endpoint-url {endpoint} s3 mb s3://my-bucket",
            flush=True,
        )
    else:
        print(
            f"relay: try  aws --endpoint-url {endpoint} s3 ls"
            f"  (access keys: {', '.join(sorted(credentials.keys))})",
            flush=True,
        )


def _say_stopping(signal_name: str) -> None:
    print(f"relay: {signal_name}: shutting down", flush=True)


async def _serve(config: Config) -> None:
    credentials = await trio.to_thread.run_sync(
        load_credentials, config.credentials, config.data_dir
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signals, shutdown, nursery.cancel_scope, _say_stopping)
        async with trio.open_nursery() as server:
            roundabout: list[tuple[str, int]] = []
            admin: list[tuple[str, int]] = []
            bound = await server.start(
                partial(
                    serve,
                    config,
                    credentials=credentials,
                    shutdown=shutdown,
                    roundabout_started=roundabout.append,
                    admin_started=admin.append,
                )
            )
            _announce(
                config,
                credentials,
                bound,
                roundabout[0] if roundabout else None,
                admin[0] if admin else None,
            )
        # serve() returned: the shutdown finished (requests in flight got their grace).
        nursery.cancel_scope.cancel()
    print("relay: stopped", flush=True)


async def _serve_workers(config: Config, count: int) -> int:
    credentials = await trio.to_thread.run_sync(
        load_credentials, config.credentials, config.data_dir
    )

    def announce(bound: Bound, pids: list[int]) -> None:
        _announce(config, credentials, bound.s3, bound.roundabout, bound.admin, workers=count)
        print(f"relay: workers 1-{count} (pids {', '.join(map(str, pids))})", flush=True)

    code = await supervise_workers(config, credentials, count, announce=announce)
    print("relay: stopped", flush=True)
    return code


def _progress(
    description: str, unit: str, *, total: int | None = None, iterable: Iterable[Any] | None = None
) -> Any:
    """A progress bar on stderr (a ``tqdm``), drawn only when stderr is a terminal.
    Imported here: only the long commands draw one, and the server need not hold it."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(
        iterable,
        desc=description,
        total=total,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
        leave=False,
    )


async def _export(config: Config, args: argparse.Namespace) -> None:
    partial = trio.Path(args.output.with_name(args.output.name + ".partial"))
    try:
        async with open_storage(config) as engine, await trio.open_file(partial, "wb") as out:
            with _progress(f"export {args.bucket}", "B") as bar:

                async def write(data: bytes) -> None:
                    await out.write(data)
                    bar.update(len(data))

                summary = await export_bucket(
                    engine, args.bucket, write, include_data=not args.no_data, version=args.version
                )
    except BaseException:
        with trio.CancelScope(shield=True):
            await partial.unlink(missing_ok=True)  # a failed export leaves nothing behind
        raise
    await partial.rename(args.output)
    print(
        f"{args.output}: root {summary.root}, {summary.objects} objects,"
        f" {summary.blocks} blocks, {summary.bytes_written} bytes"
    )


async def _ls(config: Config, args: argparse.Namespace) -> None:
    async with open_storage(config) as engine:
        start_after = ""
        while True:
            page = await engine.list_objects(
                args.bucket, prefix=args.prefix, start_after=start_after, limit=1000
            )
            for entry in page.entries:
                manifest = entry.manifest
                print(f"{manifest.size:>14}  {manifest.etag}  {entry.key}")
                if args.cids:
                    plan = await engine.plan_read(args.bucket, entry.key, manifest=manifest)
                    print(f"{'':>14}  root   {manifest.body}")
                    for span in plan.spans:
                        print(f"{'':>14}  chunk  {span.cid}  {span.size}")
            if not page.is_truncated:
                return
            start_after = page.entries[-1].key


async def _log(config: Config, args: argparse.Namespace) -> None:
    # The log is the registry's alone: no blob store is opened, so this also works beside
    # a running server (SQLite WAL readers never wait for the writer).
    async with open_registry(config) as registry:
        bucket = await registry.get_bucket(args.bucket)
        if bucket is None:
            raise NoSuchBucket(args.bucket)
        cutoff = retention_cutoff_ms(now_ms(), config.gc.history_retention_seconds)
        pinned = {pin.root for pin in await registry.list_pins()}
        for record in await registry.commit_log(args.bucket, limit=args.limit):
            when = datetime.datetime.fromtimestamp(record.time_ms / 1000, datetime.UTC)
            kept = is_retained(
                record, current_version=bucket.version, cutoff_ms=cutoff, pinned=pinned
            )
            print(
                f"{record.version:>8}  {when:%Y-%m-%d %H:%M:%S.%f}"[:-3]
                + f"  {record.root}  +{record.puts} -{record.deletes}"
                + ("" if kept else "  (expired: no longer readable)")
            )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


async def _gc(config: Config, args: argparse.Namespace) -> None:
    async with open_storage(config) as engine:
        with _progress("gc", "blob") as bar:
            phase = ""

            def progress(step: GcProgress) -> None:
                nonlocal phase
                if step.phase != phase:
                    phase = step.phase
                    bar.set_description(f"gc: {phase}")
                    bar.reset()
                bar.n = step.done
                bar.refresh()

            report = await collect_garbage(
                engine, config.gc, dry_run=args.dry_run, progress=progress
            )
    verb = "would delete" if report.dry_run else "deleted"
    print(
        f"relay gc: {verb} {report.blobs_swept} blobs ({_size(report.bytes_swept)}) of"
        f" {report.blobs_listed}; {report.blobs_marked} reachable from {report.roots} roots;"
        f" kept {report.blobs_kept_young} younger than the grace"
        f" ({config.gc.grace_seconds:g} s)"
        + (
            ""
            if report.dry_run
            else f"; reclaimed {_size(report.reclaimed.bytes_freed)},"
            f" {report.reclaimed.packs_rewritten} packs rewritten,"
            f" {report.reclaimed.packs_deleted} deleted"
        )
        + f" ({report.seconds:.1f} s)"
    )


async def _fsck(config: Config, args: argparse.Namespace) -> bool:
    async with open_storage(config) as engine:
        for name in args.buckets:
            if await engine.registry.get_bucket(name) is None:
                raise NoSuchBucket(name)
        with _progress("fsck", "block") as bar:

            def progress(done: int) -> None:
                bar.n = done
                bar.refresh()

            report = await check_store(
                engine,
                history_retention_seconds=config.gc.history_retention_seconds,
                buckets=args.buckets or None,
                progress=progress,
            )
    if args.json:
        document = {
            "clean": report.clean,
            "roots": report.roots,
            "blocks_checked": report.blocks_checked,
            "chunks_checked": report.chunks_checked,
            "problems": [
                {
                    "bucket": problem.bucket,
                    "version": problem.version,
                    "key": problem.key,
                    "cid": str(problem.block),
                    "block": problem.what,
                    "problem": problem.kind,
                    "detail": problem.detail,
                }
                for problem in report.problems
            ],
            "orphans": None
            if report.orphan_blobs is None
            else {"blobs": report.orphan_blobs, "bytes": report.orphan_bytes},
        }
        print(json.dumps(document, indent=2))
        return report.clean
    for problem in report.problems:
        where = "pinned root" if problem.version is None else f"version {problem.version}"
        print(
            f"{problem.kind}: {problem.bucket}"
            + ("" if problem.key is None else f"/{problem.key}")
            + f" ({where}): {problem.what} {problem.block}"
        )
    orphans = (
        ""
        if report.orphan_blobs is None
        else f"; {report.orphan_blobs} orphan blobs ({_size(report.orphan_bytes or 0)})"
        " that garbage collection will delete"
    )
    print(
        f"relay fsck: {'clean' if report.clean else f'{len(report.problems)} problems'}:"
        f" {report.roots} roots, {report.blocks_checked} blocks and"
        f" {report.chunks_checked} chunks checked{orphans}"
    )
    return report.clean


# Claims exported per registry read: bounds memory however many claims there are.
_EXPORT_PAGE = 10_000


async def _claims_import(config: Config, args: argparse.Namespace) -> None:
    if args.file == "-":
        text = await trio.to_thread.run_sync(sys.stdin.read)
    else:
        text = await trio.Path(args.file).read_text(encoding="utf-8")
    lines = text.splitlines()
    with _progress("check claims", "line", iterable=lines, total=len(lines)) as checked:
        claims = parse_claims(checked)  # every line checked before anything is added
    async with open_registry(config) as registry:
        await registry.add_claims(claims)  # one transaction
    print(f"relay: imported {len(claims)} claims", file=sys.stderr)


async def _claims_export(config: Config, args: argparse.Namespace) -> None:
    target = args.output.with_name(args.output.name + ".partial") if args.output else None
    out = await trio.open_file(target, "w", encoding="utf-8") if target else None
    count = 0
    finished = False
    try:
        async with open_registry(config) as registry:
            after = (b"", "")
            while page := await registry.all_claims(after=after, limit=_EXPORT_PAGE):
                # A content's claims may straddle pages; format_claims then starts a new
                # line for the rest, which imports to the same claims.
                text = "".join(line + "\n" for line in format_claims(page))
                if out is not None:
                    await out.write(text)
                else:
                    sys.stdout.write(text)
                count += len(page)
                after = (page[-1].content, page[-1].url)
        finished = True
    finally:
        if out is not None:
            await out.aclose()
        if target is not None and not finished:
            with trio.CancelScope(shield=True):
                await trio.Path(target).unlink(missing_ok=True)
    if target is not None:
        await trio.Path(target).rename(args.output)
        print(f"{args.output}: {count} claims", file=sys.stderr)
    else:
        sys.stdout.flush()


def _existing_data(config: Config) -> Config:
    """The config of a command that reads what a server stored: its data directory must
    exist (opening a store would otherwise create an empty one and report its emptiness).
    On a PostgreSQL registry the buckets are in the database, not the directory."""
    if not config.registry.is_postgres and not config.data_dir.is_dir():
        raise UsageError(
            f"no relay data directory at {config.data_dir} (give --data, or run relay serve first)"
        )
    return config


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        config = _config(args)
        configure_logging(config.log.level, "json" if config.log.format == "json" else "text")
        if config.worker_count > 1:
            return trio.run(_serve_workers, config, config.worker_count)
        limit_malloc_arenas()
        trio.run(_serve, config)
    elif args.command == "cid":
        # ipfs takes any positive --chunker=size-N; relay's own limit is its engine's.
        if not 1 <= args.chunk_size <= MAX_CHUNK_SIZE:
            raise UsageError(f"--chunk-size must be from 1 to {MAX_CHUNK_SIZE} bytes")
        if args.width < 2:
            raise UsageError("--width must be at least 2")
        print(file_cid(args.file, args.chunk_size, args.width))
    elif args.command == "export":
        trio.run(_export, _existing_data(_config(args)), args)
    elif args.command == "ls":
        trio.run(_ls, _existing_data(_config(args)), args)
    elif args.command == "log":
        trio.run(_log, _existing_data(_config(args)), args)
    elif args.command == "gc":
        trio.run(_gc, _existing_data(_config(args)), args)
    elif args.command == "fsck":
        if not trio.run(_fsck, _existing_data(_config(args)), args):
            raise StoreDamaged()
    elif args.command == "claims" and args.claims_command == "import":
        trio.run(_claims_import, _config(args), args)
    elif args.command == "claims":
        trio.run(_claims_export, _existing_data(_config(args)), args)
    elif args.command == "did":
        config = _config(args)
        print(relay_signer(config).did)
        print(f"relay: key in {key_path(config)}", file=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # A failure inside a nursery (the store, the engine) arrives as a group of one.
        with single_error():
            code = _run(args)
    except (UsageError, IncompatibleSettings) as exc:
        if args.debug:
            raise
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreDamaged:
        return EXIT_FAILED
    except _EXPECTED_FAILURES as exc:
        if args.debug:
            raise
        print(f"relay: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("relay: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"relay: internal error ({type(exc).__name__}); run again with --debug for details",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return code


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, ConnectionFailed):
        return f"the upstream store is unreachable: {text}"
    return text
