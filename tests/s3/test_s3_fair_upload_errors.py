"""How the S3 layer names what fair uploads refuse: stalled uploads and a full server."""

from __future__ import annotations

from relay.chunker.buffers import SlowUpload
from relay.s3.app import S3App
from relay.s3.errors import from_exception


def test_an_upload_dropped_from_the_pool_is_a_request_timeout() -> None:
    error = from_exception(SlowUpload("dropped"))
    assert (error.code, error.status) == ("RequestTimeout", 400)
    assert error.message == (
        "Your socket connection to the server was not read from or written to within the"
        " timeout period. Idle connections will be closed."
    )


def test_the_busy_answer_is_an_s3_slow_down_document() -> None:
    app = S3App(None, {}, multipart_uploads=object())  # type: ignore[arg-type]
    first, second = app.busy_answer(), app.busy_answer()
    assert first.status == 503
    assert ("content-type", "application/xml") in first.headers
    assert isinstance(first.body, bytes)
    assert b"<Code>SlowDown</Code>" in first.body
    assert b"<Message>Please reduce your request rate.</Message>" in first.body
    ids = [
        value
        for answer in (first, second)
        for name, value in answer.headers
        if name == "x-amz-request-id"
    ]
    assert len(set(ids)) == 2  # a fresh request id each time
