"""The ``relay`` command: ``relay cid``, ``relay export``, ``relay log``.

Every command that touches stored data takes ``--config FILE`` and ``--data DIR`` and
otherwise reads the ``RELAY_*`` environment (see ``relay.config``).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from relay.bucket.engine import Engine
from relay.bucket.errors import EngineError
from relay.bucket.export import export_bucket
from relay.chunker import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from relay.config import Config, ConfigError, load_config
from relay.storage import open_storage
from relay.unixfs import DEFAULT_CHUNK_SIZE, DEFAULT_WIDTH, file_cid


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file")
    parser.add_argument("--data", type=Path, help="data directory (default ./relay-data)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay", description="An S3 front door for content-addressed storage."
    )
    commands = parser.add_subparsers(dest="command", required=True)

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

    log = commands.add_parser("log", help="list a bucket's commits, newest first")
    log.add_argument("bucket")
    log.add_argument("-n", "--limit", type=int, default=20)
    _storage_options(log)
    return parser


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config, data_dir=args.data)


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


async def _log(config: Config, args: argparse.Namespace) -> None:
    engine: Engine
    async with open_storage(config) as engine:
        for record in await engine.bucket_log(args.bucket, limit=args.limit):
            when = datetime.datetime.fromtimestamp(record.time_ms / 1000, datetime.UTC)
            print(
                f"{record.version:>8}  {when:%Y-%m-%d %H:%M:%S.%f}"[:-3]
                + f"  {record.root}  +{record.puts} -{record.deletes}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "cid":
            if not MIN_CHUNK_SIZE <= args.chunk_size <= MAX_CHUNK_SIZE:
                raise ConfigError(
                    f"--chunk-size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}"
                )
            if args.width < 2:
                raise ConfigError("--width must be at least 2")
            print(file_cid(args.file, args.chunk_size, args.width))
        elif args.command == "export":
            trio.run(_export, _config(args), args)
        elif args.command == "log":
            trio.run(_log, _config(args), args)
    except (ConfigError, EngineError, OSError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    return 0
