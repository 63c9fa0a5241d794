"""Every request real S3 clients sent (shared/vectors/clients) verifies, and stops verifying
when any signed byte changes; recorded aws-chunked bodies decode to the recorded payload."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from relay.sigv4 import (
    END,
    NEED_DATA,
    AwsChunkedDecoder,
    ChunkData,
    Event,
    SignatureDoesNotMatch,
    SigV4Error,
    Trailers,
    VerifiedRequest,
    verify,
)

# The README: every client used access key "test", secret "test", region us-east-1.
CREDENTIALS = {"test": "test"}


def load_requests(vectors_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    requests = []
    for path in sorted((vectors_dir / "clients").glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines()):
            requests.append((f"{path.name}:{number}", json.loads(line)))
    assert len(requests) > 100
    return requests


def request_time(headers: list[list[str]]) -> datetime:
    values = dict((name.lower(), value) for name, value in headers)
    return datetime.strptime(values["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def verify_record(
    record: dict[str, Any],
    *,
    path: str | None = None,
    query: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> VerifiedRequest:
    wire_path, _, wire_query = record["target"].partition("?")
    sent_headers = [(name, value) for name, value in record["headers"]]
    return verify(
        record["method"],
        wire_path if path is None else path,
        wire_query if query is None else query,
        sent_headers if headers is None else headers,
        CREDENTIALS.get,
        request_time(record["headers"]),
        region="us-east-1",
    )


def flip(text: str, index: int) -> str:
    """``text`` with one character changed (its lowest bit flipped, staying printable)."""
    changed = chr(ord(text[index]) ^ 1)
    return text[:index] + changed + text[index + 1 :]


def positions(text: str) -> set[int]:
    return {0, len(text) // 2, len(text) - 1} if text else set()


def refuses(error: type[Exception], call: Callable[..., object], *args: Any, **kw: Any) -> bool:
    try:
        call(*args, **kw)
    except error:
        return True
    return False


def signed_header_names(record: dict[str, Any]) -> list[str]:
    authorization = dict(record["headers"])["authorization"]
    return authorization.split("SignedHeaders=")[1].split(",")[0].split(";")


def test_every_recorded_request_verifies(vectors_dir: Path) -> None:
    modes = set()
    for name, record in load_requests(vectors_dir):
        verified = verify_record(record)
        assert verified.access_key == "test", name
        assert verified.region == "us-east-1", name
        sent = dict(record["headers"])
        assert verified.payload == sent["x-amz-content-sha256"], name
        assert verified.seed_signature == sent["authorization"].rsplit("Signature=", 1)[1]
        modes.add(verified.payload if verified.is_streaming else "hex or unsigned")
    # The vectors cover every streaming mode relay sees from real clients but the signed
    # trailer one (no recorded client sends it; the AWS example covers it).
    assert modes >= {
        "hex or unsigned",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }


def test_changing_any_signed_part_fails_verification(vectors_dir: Path) -> None:
    for name, record in load_requests(vectors_dir):
        wire_path, _, wire_query = record["target"].partition("?")
        headers = [(n, v) for n, v in record["headers"]]
        signed = signed_header_names(record)
        for header_index, (header_name, value) in enumerate(headers):
            if header_name.lower() not in signed and header_name != "authorization":
                continue
            targets = positions(value)
            if header_name == "authorization":  # the signature: its last 64 characters
                targets = {len(value) - 64, len(value) - 1}
            for at in targets:
                tampered = list(headers)
                tampered[header_index] = (header_name, flip(value, at))
                assert refuses(SigV4Error, verify_record, record, headers=tampered), (
                    f"{name}: {header_name}[{at}] changed and still verified"
                )
        for at in positions(wire_path):
            with pytest.raises(SigV4Error):
                verify_record(record, path=flip(wire_path, at))
        for at in positions(wire_query):
            if wire_query[at] in "&=":
                continue
            with pytest.raises(SignatureDoesNotMatch):
                verify_record(record, query=flip(wire_query, at))


def test_unsigned_headers_can_change_without_failing(vectors_dir: Path) -> None:
    """The flips above fail because they touch signed bytes, not because any change fails."""
    checked = 0
    for name, record in load_requests(vectors_dir):
        headers = [(n, v) for n, v in record["headers"]]
        signed = signed_header_names(record)
        for index, (header_name, value) in enumerate(headers):
            if header_name.lower() in signed or header_name == "authorization" or not value:
                continue
            tampered = list(headers)
            tampered[index] = (header_name, flip(value, 0))
            verify_record(record, headers=tampered)
            checked += 1
        assert name
    assert checked > 100


def drain(decoder: AwsChunkedDecoder) -> list[Event]:
    events: list[Event] = []
    while True:
        event = decoder.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if event is END:
            return events


def decode_whole(verified: VerifiedRequest, body: bytes) -> tuple[bytes, list[Event]]:
    decoder = AwsChunkedDecoder(verified)
    decoder.feed(body)
    decoder.feed(b"")
    return split_events(drain(decoder))


def decode_bytewise(verified: VerifiedRequest, body: bytes) -> tuple[bytes, list[Event]]:
    decoder = AwsChunkedDecoder(verified)
    events: list[Event] = []
    for byte in body:
        decoder.feed(bytes([byte]))
        events.extend(drain(decoder))
    decoder.feed(b"")
    if END not in events:
        events.extend(drain(decoder))
    return split_events(events)


def split_events(events: list[Event]) -> tuple[bytes, list[Event]]:
    data = b"".join(event.data for event in events if isinstance(event, ChunkData))
    return data, [event for event in events if not isinstance(event, ChunkData)]


def streaming_records(vectors_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    found = [
        (name, record)
        for name, record in load_requests(vectors_dir)
        if "aws_chunked" in record and "body_b64" in record
    ]
    assert len(found) >= 3
    return found


def test_recorded_aws_chunked_bodies_decode_to_the_payload(vectors_dir: Path) -> None:
    for name, record in streaming_records(vectors_dir):
        verified = verify_record(record)
        body = base64.b64decode(record["body_b64"])
        data, signals = decode_whole(verified, body)
        assert len(data) == record["aws_chunked"]["decoded_len"], name
        assert hashlib.sha256(data).hexdigest() == record["payload_sha256"], name
        expected_trailers = [
            tuple(line.split(":", 1)) for line in record["aws_chunked"]["trailer_lines"]
        ]
        if "TRAILER" in verified.payload:
            assert signals == [Trailers(expected_trailers), END], name
        else:
            assert signals == [END], name
        assert decode_bytewise(verified, body) == (data, signals), name


def test_a_changed_data_byte_fails_the_recorded_chunk_signature(vectors_dir: Path) -> None:
    signed = [
        (name, record)
        for name, record in streaming_records(vectors_dir)
        if record["aws_chunked"]["chunk_signature_present"]
    ]
    assert signed
    for name, record in signed:
        verified = verify_record(record)
        body = base64.b64decode(record["body_b64"])
        data_start = body.index(b"\r\n") + 2
        for at in (data_start, data_start + 500, data_start + len(body) // 2):
            tampered = bytearray(body)
            tampered[at] ^= 1
            assert refuses(SignatureDoesNotMatch, decode_whole, verified, bytes(tampered)), (
                f"{name}: data byte {at} changed and still decoded"
            )
