"""All of relay's S3 XML: the documents it renders and the request bodies it parses.

Rendering builds strings directly (a listing page is up to a thousand entries; an element
tree per entry would cost more than the listing itself). Parsing uses the standard
library's expat-based parser on bodies the caller has already bounded in size; expat in
Python 3.11 refuses entity-expansion bombs, and no external entity is ever resolved.
"""

from __future__ import annotations

import datetime
import functools
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from xml.sax.saxutils import escape

from relay.s3.errors import MalformedXML, NotImplemented_

NAMESPACE: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
# The checksum elements of a CompleteMultipartUpload <Part> (relay.chunker.Checksum's).
CHECKSUM_ELEMENTS: Final = frozenset(
    f"Checksum{name}"
    for name in (
        *("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "SHA512", "MD5"),
        *("XXHASH64", "XXHASH3", "XXHASH128"),
    )
)
_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'


def text(value: object) -> str:
    return escape(str(value))


def iso8601(ms: int) -> str:
    """S3's timestamp form in XML: 2026-11-21T08:38:54.123Z."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # A listing page holds objects written in the same few seconds: format each once.
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def document(root: str, body: str, *, namespace: bool = True) -> bytes:
    xmlns = f' xmlns="{NAMESPACE}"' if namespace else ""
    return f"{_DECLARATION}<{root}{xmlns}>{body}</{root}>".encode()


def element(name: str, value: object) -> str:
    return f"<{name}>{text(value)}</{name}>"


def optional(name: str, value: object | None) -> str:
    return "" if value is None else element(name, value)


def checksum_elements(values: Mapping[str, str]) -> str:
    """``<ChecksumCRC32>…</ChecksumCRC32>`` for each (algorithm name, shown value)."""
    return "".join(element(f"Checksum{name.upper()}", value) for name, value in values.items())


def error_document(
    code: str, message: str, resource: str, request_id: str, extra: dict[str, str]
) -> bytes:
    body = element("Code", code) + element("Message", message)
    body += "".join(element(name, value) for name, value in extra.items())
    body += element("Resource", resource) + element("RequestId", request_id)
    return document("Error", body, namespace=False)


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    display_name: str

    def render(self, tag: str = "Owner") -> str:
        return f"<{tag}>{element('ID', self.id)}{element('DisplayName', self.display_name)}</{tag}>"


def list_buckets(
    owner: Owner,
    buckets: Iterable[tuple[str, int]],
    *,
    continuation_token: str | None = None,
    prefix: str | None = None,
) -> bytes:
    entries = "".join(
        f"<Bucket>{element('Name', name)}{element('CreationDate', iso8601(created))}</Bucket>"
        for name, created in buckets
    )
    return document(
        "ListAllMyBucketsResult",
        owner.render()
        + f"<Buckets>{entries}</Buckets>"
        + optional("ContinuationToken", continuation_token)
        + optional("Prefix", prefix),
    )


def location_constraint(region: str) -> bytes:
    # us-east-1 is the empty constraint, as AWS answers.
    inner = "" if region == "us-east-1" else text(region)
    return f'{_DECLARATION}<LocationConstraint xmlns="{NAMESPACE}">{inner}</LocationConstraint>'.encode()  # noqa: E501


# -- parsing --------------------------------------------------------------------------


def _parse(body: bytes, root: str) -> ET.Element:
    try:
        tree = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedXML() from None
    if _local(tree.tag) != root:
        raise MalformedXML()
    return tree


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element_: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element_ if _local(child.tag) == name]


def _child_text(element_: ET.Element, name: str) -> str | None:
    found = _children(element_, name)
    if not found:
        return None
    return found[0].text or ""


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    keys: list[tuple[str, str | None]]  # (key, version id)
    quiet: bool


def parse_delete(body: bytes) -> DeleteRequest:
    tree = _parse(body, "Delete")
    quiet = (_child_text(tree, "Quiet") or "false").strip().lower() == "true"
    keys = []
    for item in _children(tree, "Object"):
        key = _child_text(item, "Key")
        if key is None:
            raise MalformedXML()
        for condition in ("ETag", "LastModifiedTime", "Size"):
            if _child_text(item, condition) is not None:
                # A conditional delete relay would perform unconditionally: refused.
                raise NotImplemented_(
                    f"relay does not implement conditional DeleteObjects: {condition} in an"
                    " Object of the Delete document is not supported"
                )
        keys.append((key, _child_text(item, "VersionId")))
    if not keys or len(keys) > 1000:
        raise MalformedXML()
    return DeleteRequest(keys, quiet)


@dataclass(frozen=True, slots=True)
class CompletedPart:
    part_number: int
    etag: str  # unquoted, unescaped
    # The part's checksum elements as given: {"ChecksumCRC32": base64 value}.
    checksums: dict[str, str] = field(default_factory=dict)


def unquote_etag(value: str) -> str:
    """ETags arrive quoted, entity-escaped (&quot;, parsed by the XML layer) or bare."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


def parse_complete_multipart(body: bytes) -> list[CompletedPart]:
    tree = _parse(body, "CompleteMultipartUpload")
    parts = []
    for item in _children(tree, "Part"):
        number = _child_text(item, "PartNumber")
        etag = _child_text(item, "ETag")
        if number is None or etag is None:
            raise MalformedXML()
        try:
            part_number = int(number.strip())
        except ValueError:
            raise MalformedXML() from None
        sums = {
            _local(child.tag): (child.text or "").strip()
            for child in item
            if _local(child.tag) in CHECKSUM_ELEMENTS
        }
        parts.append(CompletedPart(part_number, unquote_etag(etag), sums))
    if not parts:
        raise MalformedXML()
    return parts


def parse_location_constraint(body: bytes) -> str | None:
    if not body.strip():
        return None
    tree = _parse(body, "CreateBucketConfiguration")
    return _child_text(tree, "LocationConstraint")


def delete_result(
    deleted: Sequence[str], errors: Sequence[tuple[str, str, str]], *, quiet: bool
) -> bytes:
    body = "" if quiet else "".join(f"<Deleted>{element('Key', key)}</Deleted>" for key in deleted)
    body += "".join(
        f"<Error>{element('Key', key)}{element('Code', code)}{element('Message', message)}</Error>"
        for key, code, message in errors
    )
    return document("DeleteResult", body)
