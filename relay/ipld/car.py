"""CARv1: a header ``{roots, version: 1}`` in DAG-CBOR, then varint-framed sections
``varint(len(cid) + len(data)) || cid || data``.

``CarBuilder`` assembles a CAR in memory and remembers where each block's bytes landed,
so the registry can find a block inside the blob that holds it. ``CarDecoder`` is a pure
incremental reader in h11's style: ``feed()`` bytes as they arrive, then ``next_event()``
until it answers ``NEED_DATA``; it holds at most one section's bytes beyond what was fed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from relay.ipld import dagcbor, multihash
from relay.ipld.cid import CID, CIDError
from relay.ipld.varint import VarintError, decode_varint, encode_varint

# A section longer than this is refused: a hostile length must not make the reader buffer
# gigabytes. 32 MiB is twice the largest chunk relay ever writes (16 MiB).
MAX_SECTION_BYTES: Final = 32 << 20


class CarError(ValueError):
    """Bytes that are not a well-formed CARv1, or a block whose bytes do not match its CID."""


@dataclass(frozen=True, slots=True)
class BlockLocation:
    """Where a block's data sits inside a CAR: ``car[offset : offset + length]``."""

    cid: CID
    offset: int
    length: int


def encode_header(roots: Iterable[CID]) -> bytes:
    header = dagcbor.encode({"roots": list(roots), "version": 1})
    return encode_varint(len(header)) + header


def encode_section(cid: CID, data: bytes) -> bytes:
    binary = cid.bytes
    return encode_varint(len(binary) + len(data)) + binary + data


class CarBuilder:
    """Collects blocks into one CARv1, deduplicating by CID, recording block locations."""

    def __init__(self, roots: Iterable[CID]) -> None:
        self._parts: list[bytes] = [encode_header(roots)]
        self._size = len(self._parts[0])
        self._locations: dict[CID, BlockLocation] = {}

    def add(self, cid: CID, data: bytes) -> None:
        if cid in self._locations:
            return
        section = encode_section(cid, data)
        data_offset = self._size + len(section) - len(data)
        self._parts.append(section)
        self._size += len(section)
        self._locations[cid] = BlockLocation(cid, data_offset, len(data))

    def __len__(self) -> int:
        return len(self._locations)

    @property
    def locations(self) -> list[BlockLocation]:
        return list(self._locations.values())

    def to_bytes(self) -> bytes:
        return b"".join(self._parts)


@dataclass(frozen=True, slots=True)
class CarHeader:
    roots: tuple[CID, ...]


@dataclass(frozen=True, slots=True)
class CarBlock:
    cid: CID
    data: bytes
    offset: int  # of the data, from the start of the CAR


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


class _End:
    def __repr__(self) -> str:
        return "END"


NEED_DATA: Final = _NeedData()
END: Final = _End()


def _verify(cid: CID, data: bytes) -> None:
    mh = cid.multihash
    if mh[:2] == b"\x12\x20":
        ok = mh[2:] == hashlib.sha256(data).digest()
    else:
        try:
            ok = multihash.matches(mh, data)
        except ValueError as exc:
            raise CarError(f"block {cid}: {exc}") from exc
    if not ok:
        raise CarError(f"block {cid} does not match its CID")


def _split_cid(section: bytes) -> tuple[CID, int]:
    """Split the CID off the front of a section; return it and the data's start."""
    if len(section) >= 34 and section[0] == 0x12 and section[1] == 0x20:
        return CID(section[:34]), 34  # CIDv0: a bare sha2-256 multihash
    try:
        version, position = decode_varint(section)
        if version != 1:
            raise CarError(f"unsupported CID version {version} in a section")
        _codec, position = decode_varint(section, position)
        _code, position = decode_varint(section, position)
        length, position = decode_varint(section, position)
    except VarintError as exc:
        raise CarError(f"bad CID in a section: {exc}") from exc
    end = position + length
    if end > len(section):
        raise CarError("section shorter than its CID")
    try:
        return CID.from_bytes(section[:end]), end
    except CIDError as exc:
        raise CarError(str(exc)) from exc


class CarDecoder:
    """Incremental CARv1 reader. Events: ``CarHeader`` once, then ``CarBlock``s, then
    ``END`` after ``end_of_input()``; ``NEED_DATA`` when more bytes are needed."""

    def __init__(self, *, verify: bool = True) -> None:
        self._buffer = bytearray()
        self._consumed = 0  # bytes of the CAR before _buffer[0]
        self._header_seen = False
        self._eof = False
        self._verify = verify

    def feed(self, data: bytes) -> None:
        if self._eof:
            raise CarError("data fed after end of input")
        self._buffer += data

    def end_of_input(self) -> None:
        self._eof = True

    def _take_frame(self) -> tuple[bytes, int] | None:
        buffer = self._buffer
        try:
            length, start = decode_varint(buffer)
        except VarintError as exc:
            if len(buffer) < 10 and "truncated" in str(exc):
                return None
            raise CarError(f"bad section length: {exc}") from exc
        if length > MAX_SECTION_BYTES:
            raise CarError(f"section of {length} bytes exceeds the {MAX_SECTION_BYTES} limit")
        if len(buffer) < start + length:
            return None
        frame = bytes(buffer[start : start + length])
        frame_offset = self._consumed + start
        del buffer[: start + length]
        self._consumed += start + length
        return frame, frame_offset

    def next_event(self) -> CarHeader | CarBlock | _NeedData | _End:
        frame = self._take_frame()
        if frame is None:
            if self._eof:
                if self._buffer:
                    raise CarError("truncated CAR section")
                if not self._header_seen:
                    raise CarError("empty input: no CAR header")
                return END
            return NEED_DATA
        section, section_offset = frame
        if not self._header_seen:
            self._header_seen = True
            return _parse_header(section)
        if not section:
            raise CarError("empty section")
        cid, data_start = _split_cid(section)
        data = section[data_start:]
        if self._verify:
            _verify(cid, data)
        return CarBlock(cid, data, section_offset + data_start)


def _parse_header(section: bytes) -> CarHeader:
    try:
        header = dagcbor.decode(section)
    except ValueError as exc:
        raise CarError(f"bad CAR header: {exc}") from exc
    if not isinstance(header, dict) or type(header.get("version")) is not int:
        raise CarError("not a CARv1 header")
    if header["version"] != 1:
        raise CarError("not a CARv1 header")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(root, CID) for root in roots):
        raise CarError("CAR header roots must be a list of CIDs")
    return CarHeader(tuple(roots))


def read_car(data: bytes, *, verify: bool = True) -> tuple[CarHeader, Iterator[CarBlock]]:
    """Read a whole CAR held in memory: its header and an iterator over its blocks."""
    decoder = CarDecoder(verify=verify)
    decoder.feed(data)
    decoder.end_of_input()
    header = decoder.next_event()
    if not isinstance(header, CarHeader):
        raise CarError("no CAR header")

    def blocks() -> Iterator[CarBlock]:
        while True:
            event = decoder.next_event()
            if isinstance(event, CarBlock):
                yield event
            else:
                return

    return header, blocks()
