"""DAG-JSON (the UCAN signing input's codec) and the base64 multibases."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.ipld import dagcbor
from relay.ipld.cid import CID
from relay.ucan import MalformedUcan
from relay.ucan.dagjson import DagJsonError, encode, multibase64_decode, multibase64_encode

LINK = CID.decode("bafyreibpatjhbcucxi67qwzgwz5pcgoqoyz5sz2xn6fznr42dvir7bzav4")

# A map whose only key is "/" reads back as a link or bytes: DAG-JSON's one ambiguity (the
# reference encoder writes such maps as they are, and so do we), so the round trip skips it.
keys = st.text(min_size=0, max_size=8).filter(lambda key: key != "/")
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.just(LINK),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=20,
)


def from_json(value: Any) -> Any:
    """Undo DAG-JSON's link and bytes forms on json.loads output (test-side reference)."""
    if isinstance(value, dict):
        if list(value) == ["/"]:
            inner = value["/"]
            if isinstance(inner, str):
                return CID.decode(inner)
            padded = inner["bytes"] + "=" * (-len(inner["bytes"]) % 4)
            return base64.b64decode(padded)
        return {key: from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_json(item) for item in value]
    return value


def key_orders(value: Any, path: str = "") -> list[tuple[str, list[str]]]:
    if isinstance(value, dict):
        found = [(path, list(value))]
        for key, item in value.items():
            found += key_orders(item, path + "/" + key)
        return found
    if isinstance(value, list):
        return [order for item in value for order in key_orders(item, path + "/*")]
    return []


def utf16(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


@given(st.dictionaries(keys, values, max_size=6))
def test_dag_json_round_trips_and_sorts_lexicographically(nb: dict[str, Any]) -> None:
    text = encode(nb).decode("utf-8")
    parsed = json.loads(text)
    assert from_json(parsed) == nb
    for _, order in key_orders(parsed):
        assert order == sorted(order, key=utf16)
    assert text == json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))


@given(st.dictionaries(st.text(max_size=6), st.integers(0, 9), min_size=2, max_size=8))
def test_dag_json_sorts_lexicographically_and_dag_cbor_length_first(nb: dict[str, int]) -> None:
    json_order = list(json.loads(encode(nb)))
    cbor_order = list(dagcbor.decode(dagcbor.encode(nb)))
    assert json_order == sorted(nb, key=utf16)
    assert cbor_order == sorted(nb, key=lambda k: (len(k.encode()), k.encode()))


def test_known_pair_where_orders_disagree() -> None:
    value = {"with": "a", "can": "b", "nb": {}}
    assert encode(value) == b'{"can":"b","nb":{},"with":"a"}'
    assert list(dagcbor.decode(dagcbor.encode(value))) == ["nb", "can", "with"]


def test_strings_are_escaped_like_json_stringify() -> None:
    assert encode('a"b\\c\n\x01\u2028é/') == b'"a\\"b\\\\c\\n\\u0001\xe2\x80\xa8\xc3\xa9/"'


def test_astral_keys_sort_by_utf16_code_units_as_javascript_does() -> None:
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+FF01 in UTF-16.
    assert encode({"\uff01": 1, "\U0001f600": 2}) == '{"😀":2,"！":1}'.encode()


@pytest.mark.parametrize("value", [1.5, {1: "a"}, object(), "\ud800"])
def test_values_dag_json_cannot_hold_are_refused(value: Any) -> None:
    with pytest.raises(DagJsonError):
        encode(value)


@pytest.mark.parametrize("prefix", ["m", "M", "u", "U"])
@given(data=st.binary(max_size=40))
def test_base64_multibases_round_trip(prefix: str, data: bytes) -> None:
    text = multibase64_encode(data, prefix)
    assert text[0] == prefix
    assert multibase64_decode(text) == data


@pytest.mark.parametrize(
    "text",
    ["", "zabc", "mAA=", "MAA", "m+/-_", "u+/", "mA", "mé", "m!!!!"],
)
def test_malformed_base64_multibase_is_refused(text: str) -> None:
    with pytest.raises(MalformedUcan):
        multibase64_decode(text)
