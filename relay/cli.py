"""The ``relay`` command: ``relay serve``, ``relay cid``, ``relay export``, ``relay log``,
``relay claims import|export``, ``relay did``.

Every command that touches stored data takes ``--config FILE`` and ``--data DIR`` and
otherwise reads the ``RELAY_*`` environment (see ``relay.config``).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import datetime
import signal
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Final

import trio

from relay.bucket.errors import EngineError, NoSuchBucket
from relay.bucket.export import export_bucket
from relay.chunker import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from relay.claims import ClaimSyntaxError, format_claims, parse_claims
from relay.config import Config, ConfigError, load_config
from relay.credentials import CREDENTIALS_FILE, Credentials, CredentialsError, load_credentials
from relay.errorgroups import single_error
from relay.server import serve
from relay.storage import key_path, open_registry, open_storage, relay_signer
from relay.unixfs import DEFAULT_CHUNK_SIZE, DEFAULT_WIDTH, file_cid
from relay.version import VERSION


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file")
    parser.add_argument("--data", type=Path, help="data directory (default ./relay-data)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay", description="An S3 front door for content-addressed storage."
    )
    parser.add_argument("--version", action="version", version=f"relay {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve S3 on the configured store")
    _storage_options(serve)
    serve.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:9000)")
    serve.add_argument(
        "--roundabout",
        metavar="HOST:PORT",
        help="also serve roundabout (CID → 302 to a presigned URL) here (default: off)",
    )

    cid = commands.add_parser("cid", help="print a file's UnixFS root CID without storing anything")
    cid.add_argument("file", type=Path)
    cid.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    cid.add_argument("--width", type=int, default=DEFAULT_WIDTH)

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
) -> None:
    endpoint = _http_endpoint(bound)
    print(
        f"relay {VERSION}: serving S3 at {endpoint} (data in {config.data_dir.resolve()})",
        flush=True,
    )
    if roundabout is not None:
        print(
            f"relay: serving roundabout at {_http_endpoint(roundabout)}"
            f" ({len(config.roundabout.buckets)} signing buckets,"
            f" auth {'required' if config.roundabout.require_auth else 'off'})",
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


async def _serve(config: Config) -> None:
    credentials = await trio.to_thread.run_sync(
        load_credentials, config.credentials, config.data_dir
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:

        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    if shutdown.is_set():
                        nursery.cancel_scope.cancel()  # a second signal: stop now
                        return
                    print(f"relay: {signal.Signals(signum).name}: shutting down", flush=True)
                    shutdown.set()

        nursery.start_soon(on_signals)
        async with trio.open_nursery() as server:
            roundabout: list[tuple[str, int]] = []
            bound = await server.start(
                partial(
                    serve,
                    config,
                    credentials=credentials,
                    shutdown=shutdown,
                    roundabout_started=roundabout.append,
                )
            )
            _announce(config, credentials, bound, roundabout[0] if roundabout else None)
        # serve() returned: the shutdown finished (requests in flight got their grace).
        nursery.cancel_scope.cancel()
    print("relay: stopped", flush=True)


async def _export(config: Config, args: argparse.Namespace) -> None:
    partial = args.output.with_name(args.output.name + ".partial")
    async with open_storage(config) as engine, await trio.open_file(partial, "wb") as out:
        summary = await export_bucket(
            engine, args.bucket, out.write, include_data=not args.no_data, version=args.version
        )
    await trio.Path(partial).rename(args.output)
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
        if await registry.get_bucket(args.bucket) is None:
            raise NoSuchBucket(args.bucket)
        for record in await registry.commit_log(args.bucket, limit=args.limit):
            when = datetime.datetime.fromtimestamp(record.time_ms / 1000, datetime.UTC)
            print(
                f"{record.version:>8}  {when:%Y-%m-%d %H:%M:%S.%f}"[:-3]
                + f"  {record.root}  +{record.puts} -{record.deletes}"
            )


# Claims exported per registry read: bounds memory however many claims there are.
_EXPORT_PAGE = 10_000


async def _claims_import(config: Config, args: argparse.Namespace) -> None:
    if args.file == "-":
        text = await trio.to_thread.run_sync(sys.stdin.read)
    else:
        text = await trio.Path(args.file).read_text(encoding="utf-8")
    claims = parse_claims(text.splitlines())  # every line checked before anything is added
    async with open_registry(config) as registry:
        await registry.add_claims(claims)  # one transaction
    print(f"relay: imported {len(claims)} claims", file=sys.stderr)


async def _claims_export(config: Config, args: argparse.Namespace) -> None:
    target = args.output.with_name(args.output.name + ".partial") if args.output else None
    out = await trio.open_file(target, "w", encoding="utf-8") if target else None
    count = 0
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
    finally:
        if out is not None:
            await out.aclose()
    if target is not None:
        await trio.Path(target).rename(args.output)
        print(f"{args.output}: {count} claims", file=sys.stderr)
    else:
        sys.stdout.flush()


# glibc's mallopt parameter number for the arena limit (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX: Final = -8


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for the server process (a no-op elsewhere).

    glibc gives each thread that allocates its own arena, up to eight per core, and an
    arena keeps what was freed in it. relay's worker threads (hashing, pack reads and
    writes, SQLite) allocate chunk-sized buffers, so ten concurrent 1 GiB uploads grew
    the process by some 20 MiB of arenas holding freed chunks; two arenas measured the
    same throughput.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            with single_error():  # a store that cannot open fails inside serve's nurseries
                limit_malloc_arenas()
                trio.run(_serve, _config(args))
        elif args.command == "cid":
            if not MIN_CHUNK_SIZE <= args.chunk_size <= MAX_CHUNK_SIZE:
                raise ConfigError(
                    f"--chunk-size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}"
                )
            if args.width < 2:
                raise ConfigError("--width must be at least 2")
            print(file_cid(args.file, args.chunk_size, args.width))
        elif args.command == "export":
            trio.run(_export, _config(args), args)
        elif args.command == "ls":
            trio.run(_ls, _config(args), args)
        elif args.command == "log":
            trio.run(_log, _config(args), args)
        elif args.command == "claims" and args.claims_command == "import":
            trio.run(_claims_import, _config(args), args)
        elif args.command == "claims":
            trio.run(_claims_export, _config(args), args)
        elif args.command == "did":
            config = _config(args)
            print(relay_signer(config).did)
            print(f"relay: key in {key_path(config)}", file=sys.stderr)
    except (ConfigError, CredentialsError, EngineError, ClaimSyntaxError, OSError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    return 0
