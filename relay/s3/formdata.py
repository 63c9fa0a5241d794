"""An incremental multipart/form-data parser (RFC 7578) for browser form uploads. Pure.

Theory of operation. A form upload's body is parts separated by a *delimiter*,
``CRLF "--" boundary``; the last is followed by ``"--"``. ``FormParser`` is fed the body in
pieces of any size (as they come off the socket) and returns events, like h11 does for
HTTP: ``Field`` (a whole small field), ``FileStart`` / ``FileData`` / ``FileEnd`` (the part
named ``file``, streamed, never held whole), and ``End`` (the closing delimiter).
``close()`` at the end of the body refuses a form that was cut short.

The parser prefixes the body with CRLF, so the first boundary line (which may open the
body) is a delimiter like any other, and whatever precedes it is a preamble to skip.
Inside a part it searches its buffer for the delimiter; in the file it hands out every
byte that cannot be the start of a delimiter and keeps only the last
``len(delimiter) - 1`` bytes, so memory stays flat however large the file. Everything
that is not the file (headers and field values, before or after it) counts against
``max_field_bytes``, the bound S3 puts on what precedes the file
(``MaxPostPreDataLengthExceededError``); a body that does not parse is
``MalformedPOSTRequest``. The events do not depend on how the body was split.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

from relay.s3.errors import MalformedPOSTRequest, MaxPostPreDataLengthExceededError

FILE_FIELD: Final = "file"
# What S3 allows before the file: the policy (a few KiB) and the other fields.
DEFAULT_MAX_FIELD_BYTES: Final = 64 << 10
# One part's header block; browsers send two short headers.
MAX_PART_HEADER_BYTES: Final = 8 << 10
# RFC 2046: a boundary is 1 to 70 characters.
MAX_BOUNDARY_CHARS: Final = 70


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    value: bytes


@dataclass(frozen=True, slots=True)
class FileStart:
    filename: str
    content_type: str | None


@dataclass(frozen=True, slots=True)
class FileData:
    data: bytes


@dataclass(frozen=True, slots=True)
class FileEnd:
    pass


@dataclass(frozen=True, slots=True)
class End:
    pass


Event = Field | FileStart | FileData | FileEnd | End


class _State(Enum):
    PREAMBLE = auto()  # before the first delimiter
    AFTER_DELIMITER = auto()  # CRLF (another part) or "--" (the end) follows
    PART_HEADERS = auto()
    FIELD = auto()
    FILE = auto()
    EPILOGUE = auto()


def boundary_of(content_type: str | None) -> str:
    """The boundary of a ``multipart/form-data`` Content-Type; MalformedPOSTRequest when
    it names none (the caller has checked the media type)."""
    params = _parameters(content_type or "")
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= MAX_BOUNDARY_CHARS:
        raise MalformedPOSTRequest()
    return boundary


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _parameters(value: str) -> dict[str, str]:
    """``; name=value`` and ``; name="quoted"`` parameters of a header, names lowercased."""
    params: dict[str, str] = {}
    rest = value.partition(";")[2]
    while rest:
        rest = rest.lstrip(" \t;")
        name, equals, rest = rest.partition("=")
        if not equals:
            break
        name = name.strip().lower()
        rest = rest.lstrip(" \t")
        if rest.startswith('"'):
            chars = []
            index = 1
            while index < len(rest) and rest[index] != '"':
                if rest[index] == "\\" and index + 1 < len(rest):
                    index += 1
                chars.append(rest[index])
                index += 1
            params[name] = "".join(chars)
            rest = rest[index + 1 :].partition(";")[2]
        else:
            token, _, rest = rest.partition(";")
            params[name] = token.strip()
    return params


class FormParser:
    def __init__(self, boundary: str, *, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES) -> None:
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        self._max_field_bytes = max_field_bytes
        self._buffer = bytearray(b"\r\n")
        self._state = _State.PREAMBLE
        self._field_bytes = 0  # non-file bytes seen (headers and values)
        self._part_name = ""
        self._seen_file = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """The events the body's next bytes complete."""
        self._buffer += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def close(self) -> None:
        """The body ended: MalformedPOSTRequest unless the closing delimiter was seen."""
        if self._state is not _State.EPILOGUE:
            raise MalformedPOSTRequest()

    def _count_field_bytes(self, count: int) -> None:
        self._field_bytes += count
        if self._field_bytes > self._max_field_bytes:
            raise MaxPostPreDataLengthExceededError()

    def _step(self, events: list[Event]) -> bool:
        """Advance once; False when more data is needed."""
        state = self._state
        buffer = self._buffer
        if state is _State.EPILOGUE:
            buffer.clear()
            return False
        if state is _State.PREAMBLE:
            index = buffer.find(self._delimiter)
            if index < 0:
                # A preamble is not form data; keep only what may start the delimiter.
                self._count_field_bytes(max(0, len(buffer) - len(self._delimiter)))
                del buffer[: max(0, len(buffer) - len(self._delimiter) + 1)]
                return False
            self._count_field_bytes(index)
            del buffer[: index + len(self._delimiter)]
            self._state = _State.AFTER_DELIMITER
            return True
        if state is _State.AFTER_DELIMITER:
            if len(buffer) < 2:
                return False
            if buffer[:2] == b"--":
                self._state = _State.EPILOGUE
                events.append(End())
                return True
            # Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                if buffer.strip(b" \t"):
                    raise MalformedPOSTRequest()
                return False
            if buffer[:line_end].strip(b" \t"):
                raise MalformedPOSTRequest()
            del buffer[: line_end + 2]
            self._state = _State.PART_HEADERS
            return True
        if state is _State.PART_HEADERS:
            index = buffer.find(b"\r\n\r\n")
            if index < 0:
                if len(buffer) > MAX_PART_HEADER_BYTES:
                    raise MalformedPOSTRequest()
                return False
            if index > MAX_PART_HEADER_BYTES:
                raise MalformedPOSTRequest()
            head = bytes(buffer[:index])
            del buffer[: index + 4]
            self._start_part(head, events)
            return True
        # FIELD or FILE: the part's bytes run to the next delimiter.
        index = buffer.find(self._delimiter)
        if state is _State.FILE:
            if index < 0:
                keep = len(self._delimiter) - 1
                if len(buffer) > keep:
                    events.append(FileData(bytes(buffer[: len(buffer) - keep])))
                    del buffer[: len(buffer) - keep]
                return False
            if index:
                events.append(FileData(bytes(buffer[:index])))
            events.append(FileEnd())
        else:
            if index < 0:
                self._check_field_size(len(buffer) - len(self._delimiter) + 1)
                return False
            self._check_field_size(index)
            self._count_field_bytes(index)
            events.append(Field(self._part_name, bytes(buffer[:index])))
        del buffer[: index + len(self._delimiter)]
        self._state = _State.AFTER_DELIMITER
        return True

    def _check_field_size(self, pending: int) -> None:
        if self._field_bytes + pending > self._max_field_bytes:
            raise MaxPostPreDataLengthExceededError()

    def _start_part(self, head: bytes, events: list[Event]) -> None:
        self._count_field_bytes(len(head))
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon:
                raise MalformedPOSTRequest()
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition")
        if disposition is None or media_type(disposition) != "form-data":
            raise MalformedPOSTRequest()
        params = _parameters(disposition)
        if "name" not in params:
            raise MalformedPOSTRequest()
        self._part_name = params["name"]
        if self._part_name.lower() == FILE_FIELD and not self._seen_file:
            self._seen_file = True
            self._state = _State.FILE
            events.append(FileStart(params.get("filename", ""), headers.get("content-type")))
        else:
            self._state = _State.FIELD
