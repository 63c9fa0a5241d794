"""Pack compaction: give back the space of deleted and damaged records (no trio here).

Theory of operation
-------------------
Packs are append-only, so a deleted blob's record stays where it is; compaction is what
turns garbage into free space. A pack is a *candidate* when no writer holds it open (see
``relay.store.packs``: every record in a sealed pack is indexed or garbage, none is on its
way to the index) and the bytes the index still points into it, its *live* bytes, are
below ``live_fraction`` of the space the file occupies. A pack with nothing live is simply
deleted. Otherwise, for each candidate in turn, fewest live bytes first (the most space
for the least copying, so a nearly full disk frees what it can before it needs room):

1. *copy*: each live record is read, hashed against its multihash, and appended to an
   output pack of the compactor's own (a damaged record is not copied: its row is
   forgotten, the store's self-healing rule, so the next put of those bytes repairs it);
2. *sync*: the output pack is fdatasynced, and the packs directory if the pack is new;
3. *switch*: one index transaction re-points every copied row from the old record to the
   new one, each only if it still points at the old record (a blob deleted, or found
   damaged and stored again elsewhere, in the meantime is left as it now is);
4. *delete*: the old pack file is unlinked and the directory fsynced.

Crash safety: a kill at any step leaves every indexed blob readable. Before 3 the index
still points at the old pack, which is intact (the copies in the output pack are
unindexed garbage, found and deleted by the next compaction, since nothing indexed lives
there). After 3 it points at copies that 2 made durable; the old pack, if 4 did not
happen, has nothing live and is deleted by the next compaction. Nothing is ever removed
while the index points into it.

Online: reads and writes go on meanwhile. Writers append to their own packs, never to a
candidate: a writer ``flock``s every pack it holds open (``relay.store.packs``), and the
compactor takes each candidate's lock (without waiting) before it touches it, so a pack
another process is still writing, or has records of on their way to the index, is
skipped; the lock is held until the pack is gone. A read that looked a blob up before 3
and opens the pack after 4 finds it missing: the store re-looks the blob up and reads it
where it moved, before it concludes anything is damaged (``relay.store.disk``). A read
through a descriptor opened before 4 still reads the old, unlinked file; the store's
reader drops its descriptor of a deleted pack so the file's blocks are freed once that
read ends (a reader in another process frees them when its descriptor cache evicts it).

Space: one output pack is filled to the pack size limit across candidates, and each
candidate is deleted as soon as its live records are switched, so the extra space needed
at any moment is at most one candidate's live bytes, less than a pack.

At most one compactor runs on a store: an exclusive ``flock`` on ``COMPACT.lock`` next to
the index (across processes); a second one finds it held and does nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from relay.ipld import multihash
from relay.store.base import CorruptBlob
from relay.store.packs import (
    Location,
    PackIndex,
    PackReader,
    PackWriter,
    existing_pack_numbers,
    fsync_directory,
    is_out_of_space,
    pack_name,
)

# A pack whose live bytes are below this fraction of its size is rewritten. At 0.8 the
# space a store's packs take stays within 1/0.8 = 1.25x of what is live (less: most packs
# are either mostly live or mostly dead), and rewriting a pack costs at most 4 bytes
# copied per byte freed; a higher threshold buys tighter space with more copying.
DEFAULT_LIVE_FRACTION = 0.8
COMPACT_LOCK_NAME = "COMPACT.lock"


@dataclass(frozen=True, slots=True)
class CompactionReport:
    bytes_freed: int
    packs_rewritten: int  # candidates whose live records were copied out
    packs_deleted: int  # candidates removed (rewritten ones and those with nothing live)
    bytes_copied: int
    blobs_copied: int
    damaged_forgotten: int


def file_bytes(path: Path) -> int:
    """The space a file occupies (its allocated blocks), 0 if it is gone."""
    try:
        return os.stat(path).st_blocks * 512
    except FileNotFoundError:
        return 0


@contextlib.contextmanager
def compactor_lock(directory: Path) -> Iterator[bool]:
    """Hold the store's one compaction lock; yields False if another holder has it."""
    fd = os.open(directory / COMPACT_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                yield False
                return
            raise
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def _pack_lock(path: Path) -> Iterator[bool]:
    """Hold ``path``'s lock if no writer does (see ``relay.store.packs``); False if the
    pack is gone or locked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def compact(
    packs_directory: Path,
    index: PackIndex,
    reader: PackReader,
    *,
    open_packs: Callable[[], set[int]],
    pack_size_limit_bytes: int,
    live_fraction: float = DEFAULT_LIVE_FRACTION,
) -> tuple[CompactionReport, bool]:
    """Compact the candidates among the packs in ``packs_directory`` (see above).

    ``open_packs`` names the packs a writer still holds; it is asked once, before the
    candidates are chosen (a sealed pack is never reopened). The caller holds the
    compaction lock. Returns what it did, and whether it stopped early for want of space
    (a full disk while copying or switching: every step so far is done or undone as
    above, and the candidates left are compacted by a later run). Any other error is
    raised, with the same guarantee.
    """
    busy = open_packs()
    usage = index.pack_usage()
    candidates: list[tuple[int, int]] = []  # (live bytes, pack)
    for number in existing_pack_numbers(packs_directory):
        if number in busy:
            continue
        size = file_bytes(packs_directory / pack_name(number))
        live = usage[number].live_bytes if number in usage else 0
        if live == 0 or live < live_fraction * size:
            candidates.append((live, number))
    candidates.sort()
    output = PackWriter(
        packs_directory,
        max([index.highest_pack(), *existing_pack_numbers(packs_directory)]) + 1,
        pack_size_limit_bytes,
    )
    freed = rewritten = deleted = copied_bytes = copied_blobs = forgotten = 0
    stopped_for_space = False
    try:
        for _live, number in candidates:
            path = packs_directory / pack_name(number)
            with _pack_lock(path) as locked:
                if not locked:
                    continue  # gone, or a writer (here or elsewhere) still holds it open
                size = file_bytes(path)
                try:
                    moves, damaged = _copy_live(index, reader, output, number)
                    if moves or damaged:
                        output.sync()
                        index.move(moves)
                        if damaged:
                            index.remove_at(damaged)
                except Exception as exc:
                    if not is_out_of_space(exc):
                        raise
                    stopped_for_space = True
                    break
                if moves or damaged:
                    forgotten += len(damaged)
                    rewritten += 1
                    copied_blobs += len(moves)
                    copied_bytes += sum(new.length for _, _, new in moves)
                # Only now, with nothing indexed in it, may the pack go.
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                fsync_directory(packs_directory)
                reader.forget_pack(number)
                freed += size
                deleted += 1
    finally:
        output.close()
    # Output packs of this run that ended up with nothing live (every copied row deleted
    # meanwhile) are found as candidates by the next run.
    report = CompactionReport(freed, rewritten, deleted, copied_bytes, copied_blobs, forgotten)
    return report, stopped_for_space


def sum_reports(first: CompactionReport, second: CompactionReport) -> CompactionReport:
    pairs = zip(dataclasses.astuple(first), dataclasses.astuple(second), strict=True)
    return CompactionReport(*(a + b for a, b in pairs))


def _copy_live(
    index: PackIndex, reader: PackReader, output: PackWriter, pack: int
) -> tuple[list[tuple[bytes, Location, Location]], list[tuple[bytes, Location]]]:
    """Append every intact live record of ``pack`` to ``output``: the moves to make, and
    the damaged records to forget."""
    moves: list[tuple[bytes, Location, Location]] = []
    damaged: list[tuple[bytes, Location]] = []
    with reader.batch() as read_record:
        for mh, location in index.in_pack(pack):
            try:
                data = read_record(mh, location, 0, location.length)
            except CorruptBlob:
                damaged.append((mh, location))
                continue
            if not multihash.matches(mh, data):
                damaged.append((mh, location))
                continue
            moves.append((mh, location, output.append(mh, data)))
    return moves, damaged
