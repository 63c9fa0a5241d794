"""``relay export``: a bucket as one CARv1 that any CAR tool can verify.

The CAR's single root is the bucket's MST root (at its current or a given version); the
sections are every block reachable from it, each once, in depth-first order: MST nodes,
the manifests they point at, each object's UnixFS interior nodes and, unless
``include_data`` is off, its raw chunks. Blocks are read through the verifying read path,
so an export of a damaged store fails instead of writing a CAR that lies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from relay.bucket.engine import Engine
from relay.ipld.car import encode_header, encode_section
from relay.ipld.cid import CID, DAG_PB, RAW
from relay.unixfs import decode_file_node

Write = Callable[[bytes], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class ExportSummary:
    root: CID
    blocks: int
    objects: int
    bytes_written: int


async def export_bucket(
    engine: Engine,
    bucket: str,
    write: Write,
    *,
    include_data: bool = True,
    version: int | None = None,
) -> ExportSummary:
    root = await engine.bucket_root(bucket, version)
    written: set[CID] = set()
    counts = {"blocks": 0, "objects": 0, "bytes": 0}

    async def emit(cid: CID, data: bytes) -> None:
        section = encode_section(cid, data)
        await write(section)
        written.add(cid)
        counts["blocks"] += 1
        counts["bytes"] += len(section)

    async def export_file(cid: CID) -> None:
        if cid in written:
            return
        if cid.codec == RAW:
            if include_data:
                await emit(cid, await engine.store.get(cid.multihash))
            return
        if cid.codec != DAG_PB:
            raise ValueError(f"unexpected codec in a UnixFS DAG: {cid}")
        data = await engine.blocks.fetch(cid)
        await emit(cid, data)
        for link in decode_file_node(data).links:
            await export_file(link.cid)

    async def export_node(cid: CID) -> None:
        if cid in written:
            return
        node = await engine.blocks.fetch_node(cid)
        await emit(cid, node.to_bytes())
        if node.left is not None:
            await export_node(node.left)
        for entry in node.entries:
            if entry.value not in written:
                manifest_bytes = await engine.blocks.fetch(entry.value)
                await emit(entry.value, manifest_bytes)
                counts["objects"] += 1
                await export_file((await engine.blocks.manifest(entry.value)).body)
            if entry.right is not None:
                await export_node(entry.right)

    header = encode_header([root])
    await write(header)
    counts["bytes"] += len(header)
    await export_node(root)
    return ExportSummary(root, counts["blocks"], counts["objects"], counts["bytes"])
