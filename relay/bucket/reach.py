"""Which blobs a bucket reaches: what a commit records, and the one-time backfill.

roundabout's ``require_auth`` answers a CID only for content reachable from a bucket the
asking key may read (``Registry.content_reachable``). relay deduplicates across
tenants, so a blob does not know its owners: each commit records what it makes reachable
instead (``relay.registry.base.Reach``), in the same transaction as the root swap. An
object's *body* is its UnixFS root: for an object of one chunk that chunk, otherwise a
dag-pb node inside the body's index CAR, whose *parts* are the chunks and that CAR.

``body_parts`` is what a put or a multipart Complete hands the writer along with the
manifest; a copy hands nothing (its body's parts were recorded when the body was first
committed). ``backfill_reach`` fills the tables for a registry made before they existed:
the objects of each bucket's current root, once. Objects deleted before that upgrade (still
in the retained history) are not walked, so their blobs are not reachable for roundabout
until written again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from relay.chunker import Leaf
from relay.ipld.cid import RAW
from relay.registry.base import BlockLocation, Reach
from relay.unixfs import leaves_for_range

if TYPE_CHECKING:
    from relay.bucket.engine import Engine

# Objects per backfill transaction: one listing page.
BACKFILL_PAGE: Final = 1000


def body_parts(leaves: Sequence[Leaf], index: Sequence[BlockLocation]) -> tuple[bytes, ...]:
    """The blobs under a body built over ``leaves`` whose index CAR holds ``index``: none
    for a body of one chunk (no index: the body is the chunk), else every distinct chunk
    and the index CAR."""
    if not index:
        return ()
    return tuple(dict.fromkeys([leaf.cid.multihash for leaf in leaves] + [index[0].blob]))


async def backfill_reach(engine: Engine) -> int:
    """Record what every bucket's current root reaches; return the objects walked."""
    registry = engine.registry
    walked = 0
    for bucket in await registry.list_buckets():
        after = ""
        while True:
            keys, more = await engine.list_keys(
                bucket.name, start_after=after, limit=BACKFILL_PAGE, root=bucket.root
            )
            bodies: dict[bytes, None] = {}
            parts: dict[tuple[bytes, bytes], None] = {}
            for manifest in await engine.manifests([cid for _, cid in keys]):
                body = manifest.body.multihash
                if body in bodies:
                    continue
                bodies[body] = None
                if manifest.body.codec == RAW:
                    continue
                root, size = manifest.body, manifest.size
                spans = await engine.blocks.run_with_file_nodes(
                    lambda load: list(leaves_for_range(root, 0, size, load))  # noqa: B023 (run now)
                )
                for span in spans:
                    parts[span.cid.multihash, body] = None
                index = await registry.find_block(body)
                if index is not None:
                    parts[index.blob, body] = None
            await registry.record_reach(bucket.name, Reach(tuple(bodies), tuple(parts)))
            walked += len(keys)
            if not more:
                break
            after = keys[-1][0]
    await registry.finish_reach_backfill()
    return walked
