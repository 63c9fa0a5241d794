"""The incremental multipart/form-data parser: tables, and any split gives the same events."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.s3 import formdata as fd
from relay.s3.errors import MalformedPOSTRequest, MaxPostPreDataLengthExceededError

BOUNDARY = "----WebKitFormBoundaryX3bY"


def form(
    fields: list[tuple[str, bytes]],
    file: bytes | None = b"hello",
    *,
    after: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    filename: str = "a.txt",
    boundary: str = BOUNDARY,
    preamble: bytes = b"",
    epilogue: bytes = b"",
) -> bytes:
    parts = [preamble]
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    if file is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
            f"\r\nContent-Type: text/plain\r\n\r\n".encode()
            + file
            + b"\r\n"
        )
    for name, value in after:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode() + epilogue)
    return b"".join(parts)


def parse(pieces: list[bytes], **kw: int) -> list[fd.Event]:
    """All events, adjacent FileData merged (how the file is cut depends on the split)."""
    parser = fd.FormParser(BOUNDARY, **kw)
    events: list[fd.Event] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    parser.close()
    merged: list[fd.Event] = []
    for event in events:
        if isinstance(event, fd.FileData) and merged and isinstance(merged[-1], fd.FileData):
            merged[-1] = fd.FileData(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def test_fields_then_the_file_then_the_end() -> None:
    body = form([("key", b"uploads/${filename}"), ("policy", b"eyJ9")], b"file bytes\r\n--x")
    assert parse([body]) == [
        fd.Field("key", b"uploads/${filename}"),
        fd.Field("policy", b"eyJ9"),
        fd.FileStart("a.txt", "text/plain"),
        fd.FileData(b"file bytes\r\n--x"),
        fd.FileEnd(),
        fd.End(),
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # An empty file is a file.
        (form([("key", b"k")], b""), [fd.Field("key", b"k"), fd.FileStart("a.txt", "text/plain"),
                                      fd.FileEnd(), fd.End()]),
        # A preamble and an epilogue are skipped.
        (form([("a", b"1")], None, preamble=b"ignore me\r\n", epilogue=b"and me"),
         [fd.Field("a", b"1"), fd.End()]),
        # Fields after the file are still parsed (the caller ignores them).
        (form([], b"x", after=[("late", b"2")]),
         [fd.FileStart("a.txt", "text/plain"), fd.FileData(b"x"), fd.FileEnd(),
          fd.Field("late", b"2"), fd.End()]),
        # A value holding the boundary text without its leading CRLF is data.
        (form([("a", f"--{BOUNDARY}".encode())], None), [fd.Field("a", f"--{BOUNDARY}".encode()),
                                                         fd.End()]),
        # Quoted names with escapes, and a filename with a path (kept; the caller cuts it).
        (form([], b"z", filename="C:\\\\dir\\\\x.png"),
         [fd.FileStart("C:\\dir\\x.png", "text/plain"), fd.FileData(b"z"), fd.FileEnd(),
          fd.End()]),
    ],
)  # fmt: skip
def test_form_shapes(body: bytes, expected: list[fd.Event]) -> None:
    assert parse([body]) == expected


@pytest.mark.parametrize(
    "body",
    [
        form([("key", b"k")])[:-10],  # cut before the closing delimiter
        b"no boundary at all",
        f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
        f"--{BOUNDARY}\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--{BOUNDARY}--"
        "".encode(),
        f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
        f"--{BOUNDARY}junk\r\nContent-Disposition: form-data; name=a\r\n\r\nx".encode(),
        f"--{BOUNDARY}\r\nno colon here\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
    ],
)
def test_malformed_forms_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedPOSTRequest):
        parse([body])


def test_fields_beyond_the_bound_are_refused_before_they_are_held() -> None:
    parser = fd.FormParser(BOUNDARY, max_field_bytes=1000)
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="policy"\r\n\r\n'.encode()
    parser.feed(head)
    for _ in range(4):
        parser.feed(b"p" * 200)
    # No delimiter in sight: refused once the field would pass the bound.
    with pytest.raises(MaxPostPreDataLengthExceededError):
        parser.feed(b"p" * 200)


def test_the_file_is_streamed_and_memory_stays_flat() -> None:
    parser = fd.FormParser(BOUNDARY)
    parser.feed(form([("key", b"k")], None)[: -len(f"--{BOUNDARY}--\r\n")])
    parser.feed(
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
        'name="file"; filename="f"\r\n\r\n'.encode()
    )
    total = 0
    for _ in range(64):
        events = parser.feed(b"\x00" * 65536)
        total += sum(len(e.data) for e in events if isinstance(e, fd.FileData))
        assert len(parser._buffer) < 100  # only what could start a delimiter is kept
    assert total > 64 * 65536 - 100


def test_boundary_and_media_type_come_from_the_content_type() -> None:
    assert fd.boundary_of(f"multipart/form-data; boundary={BOUNDARY}") == BOUNDARY
    assert fd.boundary_of('multipart/form-data; charset=utf-8; boundary="a b"') == "a b"
    assert fd.media_type("Multipart/Form-Data; boundary=x") == "multipart/form-data"
    with pytest.raises(MalformedPOSTRequest):
        fd.boundary_of("multipart/form-data")
    with pytest.raises(MalformedPOSTRequest):
        fd.boundary_of("multipart/form-data; boundary=" + "x" * 71)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12).filter(
    lambda name: name != fd.FILE_FIELD
)
# Bytes that often hold CRLF, dashes and pieces of the boundary.
tricky = st.lists(
    st.sampled_from([b"\r\n", b"--", b"-", b"\r", b"\n", BOUNDARY[:6].encode(), b"x", b"\x00"])
    | st.binary(max_size=8),
    max_size=12,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.lists(st.tuples(names, tricky), max_size=4),
    file=st.none() | tricky,
    after=st.lists(st.tuples(names, tricky), max_size=2),
    data=st.data(),
)
def test_any_split_of_the_body_gives_the_same_events(
    fields: list[tuple[str, bytes]],
    file: bytes | None,
    after: list[tuple[str, bytes]],
    data: st.DataObject,
) -> None:
    body = form(fields, file, after=after if file is not None else [])
    whole = parse([body])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=8)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert parse(pieces) == whole
    assert parse([body[i : i + 1] for i in range(len(body))]) == whole
    expected_fields = [fd.Field(n, v) for n, v in fields]
    assert [e for e in whole if isinstance(e, fd.Field)][: len(fields)] == expected_fields
    if file is not None:
        assert b"".join(e.data for e in whole if isinstance(e, fd.FileData)) == file
