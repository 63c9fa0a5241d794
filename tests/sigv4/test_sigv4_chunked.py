"""The aws-chunked decoder: AWS's published streaming examples (signed chunks, signed
trailers), any split of the input, tampering, framing errors and declared lengths."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.sigv4 import (
    END,
    NEED_DATA,
    STREAMING_SIGNED_PAYLOAD,
    STREAMING_SIGNED_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    AwsChunkedDecoder,
    ChunkData,
    Event,
    IncompleteBody,
    MalformedChunkedBody,
    MalformedTrailerError,
    SignatureDoesNotMatch,
    Trailers,
    VerifiedRequest,
    verify,
)

# AWS's worked examples ("Signature Calculations for the Authorization Header: Transferring
# Payload in Multiple Chunks" and "... Including Trailing Headers"): the documented
# credentials, request, seed signatures and chunk signatures.
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_TIME = datetime(2013, 5, 24, tzinfo=UTC)
CHUNK_1 = b"a" * 65536
CHUNK_2 = b"a" * 1024
PAYLOAD_SIGNATURES = (
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",  # seed
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
)
TRAILER_SIGNATURES = (
    "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",  # seed
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
)
TRAILER = b"x-amz-checksum-crc32c:sOO8/Q=="
TRAILER_SIGNATURE = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


def example_request(mode: str) -> VerifiedRequest:
    """The documented request, through ``verify``: its seed signature must check too."""
    seed = PAYLOAD_SIGNATURES[0] if mode == STREAMING_SIGNED_PAYLOAD else TRAILER_SIGNATURES[0]
    headers = [
        ("Host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", mode),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
    ]
    if mode == STREAMING_SIGNED_PAYLOAD:
        signed = "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        signed += "x-amz-decoded-content-length;x-amz-storage-class"
        headers.append(("Content-Length", "66824"))
    else:
        signed = "content-encoding;host;x-amz-content-sha256;x-amz-date;"
        signed += "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer"
        headers.append(("x-amz-trailer", "x-amz-checksum-crc32c"))
    credential = f"{ACCESS_KEY}/20130524/us-east-1/s3/aws4_request"
    headers.append(
        (
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential={credential},SignedHeaders={signed},Signature={seed}",
        )
    )
    return verify(
        "PUT",
        "/examplebucket/chunkObject.txt",
        "",
        headers,
        {ACCESS_KEY: SECRET}.get,
        EXAMPLE_TIME,
    )


def example_body(mode: str) -> bytes:
    signatures = PAYLOAD_SIGNATURES if mode == STREAMING_SIGNED_PAYLOAD else TRAILER_SIGNATURES
    body = b"10000;chunk-signature=%s\r\n%s\r\n" % (signatures[1].encode(), CHUNK_1)
    body += b"400;chunk-signature=%s\r\n%s\r\n" % (signatures[2].encode(), CHUNK_2)
    body += b"0;chunk-signature=%s\r\n" % signatures[3].encode()
    if mode == STREAMING_SIGNED_PAYLOAD_TRAILER:
        body += TRAILER + b"\r\nx-amz-trailer-signature:" + TRAILER_SIGNATURE.encode() + b"\r\n"
    return body + b"\r\n"


def events_for(
    request: VerifiedRequest,
    pieces: list[bytes],
    declared_trailers: frozenset[str] | None = None,
) -> list[Event]:
    """Feed ``pieces`` then EOF, pulling events after each feed, until END."""
    decoder = AwsChunkedDecoder(request, declared_trailers=declared_trailers)
    events: list[Event] = []
    for piece in [*pieces, b""]:
        decoder.feed(piece)
        while (event := decoder.next_event()) is not NEED_DATA:
            events.append(event)
            if event is END:
                return events
    raise AssertionError("no END")


def decoded(events: list[Event]) -> tuple[bytes, list[Event]]:
    data = b"".join(e.data for e in events if isinstance(e, ChunkData))
    return data, [e for e in events if not isinstance(e, ChunkData)]


@pytest.mark.parametrize("mode", [STREAMING_SIGNED_PAYLOAD, STREAMING_SIGNED_PAYLOAD_TRAILER])
def test_aws_published_examples_decode_and_verify(mode: str) -> None:
    data, signals = decoded(events_for(example_request(mode), [example_body(mode)]))
    assert data == CHUNK_1 + CHUNK_2
    if mode == STREAMING_SIGNED_PAYLOAD:
        assert signals == [END]
    else:
        assert signals == [Trailers([("x-amz-checksum-crc32c", "sOO8/Q==")]), END]


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from([STREAMING_SIGNED_PAYLOAD, STREAMING_SIGNED_PAYLOAD_TRAILER]),
    cuts=st.lists(st.integers(min_value=0, max_value=66900), max_size=12),
)
def test_any_split_of_the_body_gives_the_same_data_and_events(mode: str, cuts: list[int]) -> None:
    body = example_body(mode)
    bounds = sorted({0, len(body), *(min(cut, len(body)) for cut in cuts)})
    pieces = [body[start:end] for start, end in itertools.pairwise(bounds)]
    assert decoded(events_for(example_request(mode), pieces)) == decoded(
        events_for(example_request(mode), [body])
    )


def test_data_is_released_before_the_chunk_ends() -> None:
    """Unsigned and signed modes alike hand data over as it arrives (module docstring)."""
    decoder = AwsChunkedDecoder(example_request(STREAMING_SIGNED_PAYLOAD))
    body = example_body(STREAMING_SIGNED_PAYLOAD)
    decoder.feed(body[:1000])
    first = decoder.next_event()
    assert isinstance(first, ChunkData)
    assert 0 < len(first.data) < len(CHUNK_1)
    assert decoder.next_event() is NEED_DATA


@pytest.mark.parametrize(
    ("mode", "old", "new"),
    [
        (STREAMING_SIGNED_PAYLOAD, b"a\r\n400;", b"b\r\n400;"),  # the last byte of chunk 1
        (STREAMING_SIGNED_PAYLOAD, PAYLOAD_SIGNATURES[2].encode(), b"0" * 64),
        (STREAMING_SIGNED_PAYLOAD, PAYLOAD_SIGNATURES[3].encode(), PAYLOAD_SIGNATURES[2].encode()),
        (
            STREAMING_SIGNED_PAYLOAD,
            b"400;chunk-signature=" + PAYLOAD_SIGNATURES[2].encode(),
            b"400",
        ),
        (STREAMING_SIGNED_PAYLOAD_TRAILER, b"sOO8/Q==", b"AAAAAA=="),
        (STREAMING_SIGNED_PAYLOAD_TRAILER, TRAILER_SIGNATURE.encode(), b"1" * 64),
        (STREAMING_SIGNED_PAYLOAD_TRAILER, TRAILER + b"\r\n", b""),
        (
            STREAMING_SIGNED_PAYLOAD_TRAILER,
            TRAILER + b"\r\n",
            TRAILER + b"\r\nx-amz-meta-extra:1\r\n",
        ),
        (
            STREAMING_SIGNED_PAYLOAD_TRAILER,
            b"x-amz-trailer-signature:" + TRAILER_SIGNATURE.encode() + b"\r\n",
            b"",
        ),
    ],
)
def test_tampered_signed_bodies_fail_the_signature(mode: str, old: bytes, new: bytes) -> None:
    body = example_body(mode)
    assert old in body
    with pytest.raises(SignatureDoesNotMatch):
        events_for(example_request(mode), [body.replace(old, new, 1)])


def test_reordered_or_dropped_chunks_fail_the_signature() -> None:
    request = example_request(STREAMING_SIGNED_PAYLOAD)
    sig = [s.encode() for s in PAYLOAD_SIGNATURES]
    first = b"10000;chunk-signature=%s\r\n%s\r\n" % (sig[1], CHUNK_1)
    second = b"400;chunk-signature=%s\r\n%s\r\n" % (sig[2], CHUNK_2)
    final = b"0;chunk-signature=%s\r\n\r\n" % sig[3]
    # Without the declared length, only the chain catches a dropped chunk.
    unbounded = replace(request, decoded_content_length=None)
    for body in (second + first + final, first + final):
        with pytest.raises(SignatureDoesNotMatch):
            events_for(unbounded, [body])


def test_a_bad_chunk_is_refused_before_its_last_byte_is_released() -> None:
    request = example_request(STREAMING_SIGNED_PAYLOAD)
    body = example_body(STREAMING_SIGNED_PAYLOAD).replace(b"a\r\n400;", b"b\r\n400;", 1)
    decoder = AwsChunkedDecoder(request)
    decoder.feed(body)
    released = 0
    try:
        while True:
            event = decoder.next_event()
            assert isinstance(event, ChunkData)
            released += len(event.data)
    except SignatureDoesNotMatch:
        pass
    assert released < len(CHUNK_1)


def unsigned_request(decoded_content_length: int | None = None) -> VerifiedRequest:
    return VerifiedRequest(
        access_key="k",
        payload=STREAMING_UNSIGNED_PAYLOAD_TRAILER,
        seed_signature="0" * 64,
        signing_key=b"",
        scope="20261121/us-east-1/s3/aws4_request",
        timestamp="20261121T000000Z",
        region="us-east-1",
        presigned=False,
        decoded_content_length=decoded_content_length,
    )


def test_unsigned_trailer_mode_returns_trailers_without_signature() -> None:
    body = b"5\r\nhello\r\n3\r\nabc\r\n0\r\nx-amz-checksum-crc32:  AbCd== \r\n\r\n"
    data, signals = decoded(events_for(unsigned_request(8), [body]))
    assert data == b"helloabc"
    assert signals == [Trailers([("x-amz-checksum-crc32", "AbCd==")]), END]


def test_unsigned_trailer_mode_without_trailers() -> None:
    assert decoded(events_for(unsigned_request(), [b"2\r\nhi\r\n0\r\n\r\n"])) == (
        b"hi",
        [Trailers([]), END],
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", MalformedChunkedBody),  # size not hex
        (b"\r\nhello\r\n0\r\n\r\n", MalformedChunkedBody),  # no size
        (b"5\r\nhelloX\r\n0\r\n\r\n", MalformedChunkedBody),  # data longer than its size
        (b"5\r\nhello\r\n0\r\nno-colon\r\n\r\n", MalformedChunkedBody),
        (b"5\r\nhello\r\n0\r\n\r\nextra", MalformedChunkedBody),  # bytes after the end
        (b"5" * 5000, MalformedChunkedBody),  # a size line that never ends
        (b"5\r\nhel", IncompleteBody),  # cut in a chunk
        (b"5\r\nhello\r\n", IncompleteBody),  # cut before the final chunk
        (b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:x\r\n", IncompleteBody),  # no blank line
    ],
)
def test_broken_framing_is_a_typed_error(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        events_for(unsigned_request(), [body])


@pytest.mark.parametrize("declared", [4, 6])
def test_the_declared_decoded_length_must_match(declared: int) -> None:
    with pytest.raises(IncompleteBody):
        events_for(unsigned_request(declared), [b"5\r\nhello\r\n0\r\n\r\n"])


def test_trailers_are_refused_where_the_mode_has_none() -> None:
    request = example_request(STREAMING_SIGNED_PAYLOAD)
    body = example_body(STREAMING_SIGNED_PAYLOAD)[:-2] + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    with pytest.raises(MalformedTrailerError):
        events_for(request, [body])


CRC32 = frozenset({"x-amz-checksum-crc32"})


def test_declared_trailers_that_arrive_are_returned() -> None:
    body = b"2\r\nhi\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    assert decoded(events_for(unsigned_request(), [body], CRC32))[1] == [
        Trailers([("x-amz-checksum-crc32", "AAAAAA==")]),
        END,
    ]


def test_signed_declared_trailer_verifies() -> None:
    request = example_request(STREAMING_SIGNED_PAYLOAD_TRAILER)
    body = example_body(STREAMING_SIGNED_PAYLOAD_TRAILER)
    declared = frozenset({"x-amz-checksum-crc32c"})
    assert decoded(events_for(request, [body], declared))[1][-1] is END


@pytest.mark.parametrize(
    "body",
    [
        b"2\r\nhi\r\n0\r\n\r\n",  # declared, never sent
        b"2\r\nhi\r\n0\r\nx-amz-checksum-sha1:AAAAAA==\r\n\r\n",  # another one instead
        # declared and sent, and one that was not declared
        b"2\r\nhi\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-meta-x:y\r\n\r\n",
        # sent twice
        b"2\r\nhi\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
    ],
)
def test_trailers_must_be_exactly_the_declared_ones(body: bytes) -> None:
    with pytest.raises(MalformedTrailerError):
        events_for(unsigned_request(), [body], CRC32)


def test_a_signed_body_without_its_declared_trailer_is_refused() -> None:
    request = example_request(STREAMING_SIGNED_PAYLOAD_TRAILER)
    body = example_body(STREAMING_SIGNED_PAYLOAD_TRAILER)
    with pytest.raises(MalformedTrailerError):
        events_for(request, [body], frozenset({"x-amz-checksum-sha256"}))


def test_a_body_cut_in_its_trailers_is_incomplete() -> None:
    with pytest.raises(IncompleteBody):
        events_for(unsigned_request(), [b"2\r\nhi\r\n0\r\n"], CRC32)


def test_an_undeclared_trailer_is_accepted_when_nothing_was_declared_to_check() -> None:
    body = b"2\r\nhi\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    assert decoded(events_for(unsigned_request(), [body]))[1][-1] is END


def test_non_streaming_requests_have_no_chunked_decoder() -> None:
    with pytest.raises(ValueError, match="not aws-chunked"):
        AwsChunkedDecoder(replace(unsigned_request(), payload="UNSIGNED-PAYLOAD"))


def sign_chunk(key: bytes, request: VerifiedRequest, previous: str, data: bytes) -> str:
    """An independent spelling of the documented chunk string to sign."""
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            request.timestamp,
            request.scope,
            previous,
            hashlib.sha256(b"").hexdigest(),
            hashlib.sha256(data).hexdigest(),
        ]
    )
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@settings(max_examples=40, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=5),
    piece_size=st.integers(min_value=1, max_value=64),
)
def test_signed_chunks_of_any_sizes_decode(chunks: list[bytes], piece_size: int) -> None:
    request = example_request(STREAMING_SIGNED_PAYLOAD)
    request = replace(request, decoded_content_length=sum(map(len, chunks)))
    body = b""
    previous = request.seed_signature
    for data in [*chunks, b""]:
        previous = sign_chunk(request.signing_key, request, previous, data)
        body += b"%x;chunk-signature=%s\r\n%s\r\n" % (len(data), previous.encode(), data)
    pieces = [body[i : i + piece_size] for i in range(0, len(body), piece_size)]
    assert decoded(events_for(request, pieces)) == (b"".join(chunks), [END])
