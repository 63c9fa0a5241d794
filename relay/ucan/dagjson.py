"""DAG-JSON encoding (the part UCAN signing needs) and the base64 multibases.

relay.ipld has no DAG-JSON and no base64 multibase, and the only place relay needs them is
the UCAN signing input and piri's printed delegations, so they live here.

DAG-JSON as ``@ipld/dag-json`` writes it: compact (no whitespace), strings escaped as
``JSON.stringify`` does (which is what Python's ``json.dumps(..., ensure_ascii=False)``
does too), bytes as ``{"/": {"bytes": "<standard base64, no padding>"}}``, links as
``{"/": "<CID string>"}``, and map keys sorted in plain lexicographic order of their
UTF-16 code units (JavaScript's ``<`` on strings). That is *not* DAG-CBOR's order
(length first, then bytewise): ``{"nb", "can", "with"}`` is ``can, nb, with`` here and
``nb, can, with`` in DAG-CBOR. The UTF-16 order equals code-point order except that
characters above U+FFFF sort before U+E000…U+FFFF; we follow the reference.

Floats are refused: no UCAN field relay writes or verifies carries one, and DAG-JSON's
float formatting is the one place two encoders could disagree.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from relay.ipld.cid import CID
from relay.ucan.errors import MalformedUcan


class DagJsonError(MalformedUcan):
    """A value that this DAG-JSON encoder will not write."""


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _encode(out: list[str], value: Any) -> None:
    kind = type(value)
    if kind is str:
        out.append(json.dumps(value, ensure_ascii=False))
    elif kind is bool or value is None:
        out.append("true" if value is True else "false" if value is False else "null")
    elif kind is int:
        out.append(str(value))
    elif kind is bytes or isinstance(value, bytearray | memoryview):
        out.append('{"/":{"bytes":"')
        out.append(b64_nopad(bytes(value)))
        out.append('"}}')
    elif kind is CID:
        out.append('{"/":"')
        out.append(value.encode())
        out.append('"}')
    elif kind is dict:
        for key in value:
            if type(key) is not str:
                raise DagJsonError("DAG-JSON map keys are strings")
        out.append("{")
        for index, key in enumerate(sorted(value, key=_utf16_key)):
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(out, value[key])
        out.append("}")
    elif kind is list or kind is tuple:
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(out, item)
        out.append("]")
    elif kind is float:
        raise DagJsonError("floats are not written by this DAG-JSON encoder")
    else:
        raise DagJsonError(f"cannot encode {kind.__name__} as DAG-JSON")


def encode(value: Any) -> bytes:
    """DAG-JSON bytes of an IPLD data-model value (dict/list/str/bytes/int/bool/None/CID)."""
    out: list[str] = []
    _encode(out, value)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DagJsonError("a string holds a lone surrogate") from exc


# -- base64 and its multibase prefixes ----------------------------------------------------


def b64_nopad(data: bytes) -> str:
    """Standard base64 without padding (DAG-JSON bytes, multibase ``m``)."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64url_nopad(data: bytes) -> str:
    """URL-safe base64 without padding (JWT segments, multibase ``u``)."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


# prefix → (alphabet is URL-safe, padded)
_BASE64_MULTIBASES = {
    "m": (False, False),
    "M": (False, True),
    "u": (True, False),
    "U": (True, True),
}


def multibase64_encode(data: bytes, prefix: str = "m") -> str:
    """``data`` in a base64 multibase: ``m`` (standard, no padding, piri's delegations),
    ``M`` (standard, padded, ucanto's signer keys), ``u`` / ``U`` (URL-safe)."""
    if prefix not in _BASE64_MULTIBASES:
        raise ValueError(f"{prefix!r} is not a base64 multibase prefix")
    url_safe, padded = _BASE64_MULTIBASES[prefix]
    text = (base64.urlsafe_b64encode if url_safe else base64.b64encode)(data).decode("ascii")
    return prefix + (text if padded else text.rstrip("="))


def multibase64_decode(text: str) -> bytes:
    """Decode a base64 multibase string (prefix ``m``, ``M``, ``u`` or ``U``), strictly:
    the alphabet of the prefix, and padding only where the prefix calls for it."""
    if not text or text[0] not in _BASE64_MULTIBASES:
        raise MalformedUcan("not a base64 multibase string (prefix m, M, u or U)")
    url_safe, padded = _BASE64_MULTIBASES[text[0]]
    body = text[1:]
    if not body.isascii():
        raise MalformedUcan("invalid base64")
    if padded:
        if len(body) % 4:
            raise MalformedUcan("padded base64 has a length that is a multiple of 4")
    elif "=" in body:
        raise MalformedUcan("unpadded base64 multibase holds padding")
    else:
        if len(body) % 4 == 1:
            raise MalformedUcan("invalid base64 length")
        body += "=" * (-len(body) % 4)
    if url_safe:
        if "+" in body or "/" in body:
            raise MalformedUcan("URL-safe base64 holds '+' or '/'")
        body = body.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise MalformedUcan(f"invalid base64: {exc}") from exc
