"""UCAN blocks: the two key orders on arbitrary caveats, signature round trips, decoding."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.ipld import dagcbor
from relay.ipld.block import Block, cbor_block
from relay.ipld.cid import CID
from relay.ucan import (
    BadSignature,
    Capability,
    MalformedUcan,
    Signer,
    decode_ucan,
    delegation_from_archive,
    format_delegation,
    invocation,
    issue,
    parse_delegation,
    signing_input,
)

ISSUER = Signer.from_seed(bytes(range(32)))
AUDIENCE = Signer.from_seed(bytes(range(1, 33))).did
LINK = CID.decode("bafyreibpatjhbcucxi67qwzgwz5pcgoqoyz5sz2xn6fznr42dvir7bzav4")

caveat_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.text(max_size=10),
        st.binary(max_size=10),
        st.just(LINK),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
caveats = st.dictionaries(st.text(max_size=8), caveat_values, max_size=6)


def b64url_json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def utf16(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


@settings(max_examples=60)
@given(
    nb=caveats,
    nonce=st.none() | st.text(max_size=5),
    expiration=st.none() | st.integers(0, 2**53 - 1),
)
def test_signature_covers_dag_json_while_the_block_is_dag_cbor(
    nb: dict[str, Any], nonce: str | None, expiration: int | None
) -> None:
    block = invocation(
        ISSUER,
        AUDIENCE,
        Capability(ISSUER.did, "test/run", nb),
        proofs=[LINK],
        expiration=expiration,
        nonce=nonce,
    )
    model = dagcbor.decode(block.data)
    cbor_nb_keys = list(model["att"][0]["nb"])
    assert cbor_nb_keys == sorted(nb, key=lambda k: (len(k.encode()), k.encode()))

    ucan = decode_ucan(block)
    header, payload = ucan.signing_input().decode("ascii").split(".")
    assert b64url_json(header) == {"alg": "EdDSA", "typ": "JWT", "ucv": "0.9.1"}
    claims = b64url_json(payload)
    assert list(claims["att"][0]["nb"]) == sorted(nb, key=utf16)
    assert claims["iss"] == ISSUER.did
    assert claims["aud"] == AUDIENCE
    assert claims["prf"] == [str(LINK)]
    assert claims["exp"] == expiration
    assert ("nnc" in claims) == bool(nonce) == ("nnc" in model)
    assert "v" not in claims
    assert "s" not in claims

    ucan.verify_signature()
    assert ISSUER.verifier.verify_varsig(ucan.signing_input(), model["s"])


def test_a_changed_field_breaks_the_signature() -> None:
    block = invocation(
        ISSUER, AUDIENCE, Capability(ISSUER.did, "test/run", {"n": 1}), proofs=[], expiration=9
    )
    model = dagcbor.decode(block.data)
    model["att"][0]["nb"]["n"] = 2
    with pytest.raises(BadSignature):
        decode_ucan(cbor_block(model)).verify_signature()
    model = dagcbor.decode(block.data)
    model["exp"] = 10
    with pytest.raises(BadSignature):
        decode_ucan(cbor_block(model)).verify_signature()


def test_optional_fields_are_left_out_unless_set() -> None:
    bare = dagcbor.decode(
        invocation(ISSUER, AUDIENCE, Capability(ISSUER.did, "a/b"), proofs=[], expiration=None).data
    )
    assert sorted(bare) == ["att", "aud", "exp", "iss", "prf", "s", "v"]
    assert bare["att"] == [{"with": ISSUER.did, "can": "a/b"}]
    full = issue(
        ISSUER,
        AUDIENCE,
        [Capability(ISSUER.did, "a/b", {})],
        expiration=5,
        facts=[{"k": "v"}],
        nonce="n1",
        not_before=3,
    )
    decoded = dagcbor.decode(full.data)
    assert (decoded["fct"], decoded["nnc"], decoded["nbf"]) == ([{"k": "v"}], "n1", 3)
    again = decode_ucan(full.block)
    assert (again.facts, again.nonce, again.not_before) == (({"k": "v"},), "n1", 3)
    again.verify_signature()
    claims = b64url_json(again.signing_input().decode().split(".")[1])
    assert list(claims) == ["att", "aud", "exp", "fct", "iss", "nbf", "nnc", "prf"]


def test_signing_input_is_independent_of_the_signer() -> None:
    text = signing_input(ISSUER.did, AUDIENCE, [Capability("x", "y")], expiration=None)
    assert text.startswith(b"eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsInVjdiI6IjAuOS4xIn0.")


def test_expiry_is_judged_against_the_given_now() -> None:
    ucan = issue(ISSUER, AUDIENCE, [Capability("x", "y")], expiration=100)
    assert not ucan.is_expired(99)
    assert ucan.is_expired(100)
    assert not issue(ISSUER, AUDIENCE, [Capability("x", "y")], expiration=None).is_expired(10**12)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("v", "1.0.0"),
        ("iss", "did:key:z6Mk"),
        ("att", []),
        ("att", [{"with": 1, "can": "x"}]),
        ("prf", ["bafy"]),
        ("exp", "soon"),
        ("s", "sig"),
        ("nnc", 7),
        ("fct", [1]),
    ],
)
def test_malformed_ucan_fields_are_refused(field: str, value: Any) -> None:
    model = dagcbor.decode(issue(ISSUER, AUDIENCE, [Capability("x", "y")], expiration=1).data)
    model[field] = value
    with pytest.raises(MalformedUcan):
        decode_ucan(cbor_block(model))


def test_missing_exp_and_non_map_blocks_are_refused() -> None:
    model = dagcbor.decode(issue(ISSUER, AUDIENCE, [Capability("x", "y")], expiration=1).data)
    del model["exp"]
    with pytest.raises(MalformedUcan, match="exp"):
        decode_ucan(cbor_block(model))
    with pytest.raises(MalformedUcan):
        decode_ucan(cbor_block([1, 2]))
    with pytest.raises(MalformedUcan):
        decode_ucan(Block(LINK, b"\xff"))


# -- delegations with a chain ----------------------------------------------------------------


def test_delegation_chain_exports_proofs_first_and_round_trips() -> None:
    root = issue(ISSUER, AUDIENCE, [Capability(ISSUER.did, "blob/allocate")], expiration=None)
    middle = Signer.from_seed(bytes(range(1, 33)))
    leaf = issue(
        middle,
        Signer.from_seed(bytes(range(2, 34))).did,
        [Capability(ISSUER.did, "blob/allocate")],
        expiration=None,
        proofs=[root.cid],
    )
    from relay.ucan import Delegation

    delegation = Delegation(leaf, (root.block, leaf.block))
    parsed = parse_delegation(format_delegation(delegation))
    assert [b.cid for b in parsed.blocks] == [root.cid, leaf.cid]
    assert parsed.cid == leaf.cid
    assert parsed.ucan.proofs == (root.cid,)


@pytest.mark.parametrize(
    "text",
    [
        "mAXESIC8E0nCKgro9+FsmtnrxGdB2M9lnV2+Llsea",  # a dag-cbor sha2-256 CID, not a CAR
        "zQmaozNR7DZHQK1ZcU9p7QdrshMvXqWK6gpu5rmrkPdT3L4",
        "mAYIEAAA",  # identity CAR of zero bytes
    ],
)
def test_printed_delegations_that_are_not_archives_are_refused(text: str) -> None:
    with pytest.raises(MalformedUcan):
        parse_delegation(text)


def test_archive_without_the_variant_root_is_refused() -> None:
    from relay.ipld.car import CarBuilder

    ucan = issue(ISSUER, AUDIENCE, [Capability("x", "y")], expiration=None)
    car = CarBuilder([ucan.cid])
    car.add(ucan.cid, ucan.data)
    with pytest.raises(MalformedUcan, match=r"ucan@0\.9\.1"):
        delegation_from_archive(car.to_bytes())
