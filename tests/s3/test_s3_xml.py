"""S3 XML: exact documents and the request bodies clients send."""

from __future__ import annotations

import pytest

from relay.chunker import Checksum
from relay.s3 import xml
from relay.s3.errors import MalformedXML


def test_error_document_is_exact() -> None:
    assert xml.error_document("NoSuchKey", "gone <now>", "/b/k&j", "ID1", {"Key": "k&j"}) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        b"<Message>gone &lt;now&gt;</Message><Key>k&amp;j</Key><Resource>/b/k&amp;j</Resource>"
        b"<RequestId>ID1</RequestId></Error>"
    )


def test_delete_result_is_exact_and_quiet_hides_successes() -> None:
    loud = xml.delete_result(["a"], [("b", "InternalError", "x")], quiet=False)
    assert loud.endswith(
        b'<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Deleted><Key>a</Key>'
        b"</Deleted><Error><Key>b</Key><Code>InternalError</Code><Message>x</Message></Error>"
        b"</DeleteResult>"
    )
    assert b"<Deleted>" not in xml.delete_result(["a"], [], quiet=True)


def test_parse_delete_with_and_without_namespace() -> None:
    body = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>'
        b"<Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>null</VersionId>"
        b"</Object></Delete>"
    )
    parsed = xml.parse_delete(body)
    assert parsed.quiet
    assert parsed.keys == [("a&b", None), ("c", "null")]
    assert xml.parse_delete(b"<Delete><Object><Key>x</Key></Object></Delete>").keys == [("x", None)]


@pytest.mark.parametrize(
    "body", [b"", b"<Delete>", b"<Other/>", b"<Delete></Delete>", b"<Delete><Object/></Delete>"]
)
def test_malformed_delete_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        xml.parse_delete(body)


def test_complete_multipart_accepts_quoted_escaped_and_bare_etags() -> None:
    body = (
        b'<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"aa"</ETag></Part>'
        b"<Part><PartNumber>2</PartNumber><ETag>&quot;bb&quot;</ETag></Part>"
        b"<Part><PartNumber>3</PartNumber><ETag>cc</ETag></Part></CompleteMultipartUpload>"
    )
    parts = xml.parse_complete_multipart(body)
    assert [(p.part_number, p.etag) for p in parts] == [(1, "aa"), (2, "bb"), (3, "cc")]


def test_entity_expansion_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
        b"]><Delete><Object><Key>&c;</Key></Object></Delete>"
    )
    try:
        parsed = xml.parse_delete(bomb)
    except MalformedXML:
        return
    assert len(parsed.keys[0][0]) <= 1000  # expanded only a little, never a bomb


def test_timestamps() -> None:
    assert xml.iso8601(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"


def test_complete_multipart_parts_keep_their_checksums() -> None:
    body = (
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>aa</ETag>"
        b"<ChecksumCRC64NVME> rosUhgp5mIg= </ChecksumCRC64NVME></Part>"
        b"<Part><PartNumber>2</PartNumber><ETag>bb</ETag></Part></CompleteMultipartUpload>"
    )
    parts = xml.parse_complete_multipart(body)
    assert [p.checksums for p in parts] == [{"ChecksumCRC64NVME": "rosUhgp5mIg="}, {}]


def test_checksum_elements() -> None:
    assert xml.checksum_elements({"crc32": "y/Q5Jg==", "xxhash128": "a&b-2"}) == (
        "<ChecksumCRC32>y/Q5Jg==</ChecksumCRC32><ChecksumXXHASH128>a&amp;b-2</ChecksumXXHASH128>"
    )


def test_every_checksum_algorithm_has_its_xml_element() -> None:
    assert {kind.xml_name for kind in Checksum} == xml.CHECKSUM_ELEMENTS
