"""Location claims as JSON lines: what ``relay claims import`` reads and ``export`` writes.

One claim group a line::

    {"content": "<CID or z-multihash>", "location": ["<url>", ...],
     "range": {"offset": n, "length": n}}

``content`` is a CID in any form ``relay.ipld.cid.CID.decode`` reads (the claim is then
about its multihash: the same bytes whatever the codec) or a base58btc multihash with the
``z`` prefix (a blob key, ``relay.ipld.cid.blob_key``). ``location`` holds one or more
absolute URLs (http, https or s3), each becoming its own ``Claim``; ``range`` is optional,
its ``length`` too (then the range runs to the end). ``export`` writes ``content`` as the
``z`` multihash and groups a content's claims that share a range into one line, so an
export imports back to the same claims.

Pure code: parsing and formatting only; the CLI does the reading and the registry writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Final
from urllib.parse import urlsplit

from relay.ipld import multihash
from relay.ipld.base import MultibaseError
from relay.ipld.cid import CID, CIDError, blob_key, parse_blob_key
from relay.registry.base import Claim

_URL_SCHEMES: Final = ("http", "https", "s3")
_FIELDS: Final = frozenset({"content", "location", "range"})


class ClaimSyntaxError(ValueError):
    """A claims line that cannot be read; the message names the line."""


def parse_content(text: str) -> bytes:
    """The multihash a claim is about, from a ``z`` multihash or any CID string."""
    if text.startswith("z"):
        # A base58btc CIDv1 starts with "z" too; its bytes never parse as a multihash
        # (version 1 then the codec would declare a digest length that does not fit).
        try:
            return parse_blob_key(text)
        except (CIDError, MultibaseError, multihash.MultihashError, ValueError):
            pass
    try:
        return CID.decode(text).multihash
    except (CIDError, ValueError) as exc:
        raise ValueError(f"content {text!r} is neither a CID nor a z-multihash: {exc}") from None


def _natural(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def parse_claims_line(line: str) -> list[Claim]:
    """The claims one JSON line makes (one per URL). Raises ``ValueError`` if malformed."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    if not isinstance(record, dict):
        raise ValueError("a claim is a JSON object")
    unknown = set(record) - _FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    content = record.get("content")
    if not isinstance(content, str):
        raise ValueError("content must be a string (a CID or a z-multihash)")
    mh = parse_content(content)
    locations = record.get("location")
    if not isinstance(locations, list) or not locations:
        raise ValueError("location must be a non-empty list of URLs")
    for url in locations:
        if not isinstance(url, str):
            raise ValueError(f"location {url!r} is not a string")
        parts = urlsplit(url)
        if parts.scheme not in _URL_SCHEMES or not parts.netloc:
            raise ValueError(f"location {url!r} is not an absolute http(s) or s3 URL")
    offset: int | None = None
    length: int | None = None
    if "range" in record:
        byte_range = record["range"]
        if not isinstance(byte_range, dict) or set(byte_range) - {"offset", "length"}:
            raise ValueError('range must be {"offset": n, "length": n}')
        if "offset" not in byte_range:
            raise ValueError("range needs an offset")
        offset = _natural(byte_range["offset"], "range offset")
        if "length" in byte_range:
            length = _natural(byte_range["length"], "range length")
    return [Claim(mh, url, offset, length) for url in locations]


def parse_claims(lines: Iterable[str]) -> list[Claim]:
    """Every claim in a JSON-lines text, or ``ClaimSyntaxError`` naming the first bad line
    (and nothing: a file is taken whole or not at all). Blank lines are skipped."""
    claims: list[Claim] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            claims.extend(parse_claims_line(line))
        except ValueError as exc:
            raise ClaimSyntaxError(f"line {number}: {exc}") from None
    return claims


def format_claims(claims: Iterable[Claim]) -> Iterator[str]:
    """JSON lines (without newlines) for claims in (content, url) order: consecutive claims
    with the same content and range share a line."""
    group: list[Claim] = []
    for claim in claims:
        if group and (claim.content, claim.offset, claim.length) != (
            group[0].content,
            group[0].offset,
            group[0].length,
        ):
            yield _format_group(group)
            group = []
        group.append(claim)
    if group:
        yield _format_group(group)


def _format_group(group: list[Claim]) -> str:
    first = group[0]
    record: dict[str, Any] = {
        "content": blob_key(first.content),
        "location": [claim.url for claim in group],
    }
    if first.offset is not None:
        record["range"] = {"offset": first.offset}
        if first.length is not None:
            record["range"]["length"] = first.length
    return json.dumps(record, separators=(",", ":"))
