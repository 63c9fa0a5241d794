"""Receipts and the agent-message transport: what is believed, what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.ipld import dagcbor
from relay.ipld.block import Block, cbor_block
from relay.ipld.car import CarBuilder
from relay.ipld.cid import CID
from relay.ucan import (
    BadSignature,
    Capability,
    Effects,
    Expired,
    MalformedUcan,
    MissingReceipt,
    Signer,
    TransportError,
    UcantoError,
    Unauthorized,
    WrongInvocation,
    WrongIssuer,
    accepted_location,
    agent_message,
    agent_response,
    allocation,
    decode_receipt,
    invocation,
    issue_receipt,
    location_claim,
    parse_agent_message,
    parse_agent_response,
    read_receipt,
    ucanto_error,
)

PIRI = Signer.from_seed(b"\x02" * 32)
CLIENT = Signer.from_seed(b"\x01" * 32)
MALLORY = Signer.from_seed(b"\x09" * 32)


def invoke(n: int = 0) -> Block:
    return invocation(
        CLIENT, PIRI.did, Capability(PIRI.did, "test/run", {"n": n}), proofs=[], expiration=None
    )


def respond(ran: CID, out: dict[str, Any], issuer: Signer = PIRI) -> bytes:
    return agent_response({ran: issue_receipt(issuer, ran, out)})


def test_a_good_receipt_is_believed_and_unwrapped() -> None:
    ran = invoke().cid
    receipt = read_receipt(respond(ran, {"ok": {"size": 3}}), ran, PIRI.did)
    assert receipt.is_ok
    assert receipt.unwrap() == {"size": 3}
    assert receipt.issuer == PIRI.did
    assert receipt.ran == ran


@given(position=st.integers(4, 67), flip=st.integers(1, 255))
def test_a_tampered_receipt_signature_is_refused(position: int, flip: int) -> None:
    ran = invoke().cid
    value = dagcbor.decode(issue_receipt(PIRI, ran, {"ok": {}}).data)
    signature = bytearray(value["sig"])
    signature[position] ^= flip
    value["sig"] = bytes(signature)
    forged = cbor_block(value)
    with pytest.raises(BadSignature):
        read_receipt(agent_response({ran: forged}), ran, PIRI.did)


def test_a_tampered_outcome_is_refused() -> None:
    ran = invoke().cid
    value = dagcbor.decode(issue_receipt(PIRI, ran, {"error": {"name": "Unauthorized"}}).data)
    value["ocm"]["out"] = {"ok": {}}
    with pytest.raises(BadSignature):
        read_receipt(agent_response({ran: cbor_block(value)}), ran, PIRI.did)


def test_a_receipt_for_another_invocation_is_refused() -> None:
    sent, other = invoke(1).cid, invoke(2).cid
    # Reported under the invocation we sent, but it ran another one.
    swapped = agent_response({sent: issue_receipt(PIRI, other, {"ok": {}})})
    with pytest.raises(WrongInvocation):
        parse_agent_response(swapped)
    # Honestly reported, but not what we asked about.
    with pytest.raises(MissingReceipt):
        read_receipt(respond(other, {"ok": {}}), sent, PIRI.did)
    receipt = decode_receipt(issue_receipt(PIRI, other, {"ok": {}}))
    with pytest.raises(WrongInvocation):
        receipt.verify(PIRI.did, ran=sent)


def test_a_receipt_issued_by_someone_else_is_refused() -> None:
    ran = invoke().cid
    with pytest.raises(WrongIssuer):
        read_receipt(respond(ran, {"ok": {}}, issuer=MALLORY), ran, PIRI.did)


def test_a_receipt_claiming_the_service_but_signed_by_someone_else_is_refused() -> None:
    ran = invoke().cid
    ocm = {"ran": ran, "out": {"ok": {}}, "fx": {"fork": []}, "meta": {}, "iss": PIRI.did}
    ocm["prf"] = []
    forged = cbor_block({"ocm": ocm, "sig": MALLORY.sign_varsig(dagcbor.encode(ocm))})
    with pytest.raises(BadSignature):
        read_receipt(agent_response({ran: forged}), ran, PIRI.did)


def test_a_receipt_without_iss_is_checked_against_the_expected_issuer() -> None:
    ran = invoke().cid
    ocm = {"ran": ran, "out": {"ok": {}}, "fx": {"fork": []}, "meta": {}, "prf": []}
    for signer, believed in ((PIRI, True), (MALLORY, False)):
        block = cbor_block({"ocm": ocm, "sig": signer.sign_varsig(dagcbor.encode(ocm))})
        receipt = decode_receipt(block)
        assert receipt.issuer is None
        if believed:
            receipt.verify(PIRI.did)
        else:
            with pytest.raises(BadSignature):
                receipt.verify(PIRI.did)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"name": "Unauthorized", "message": "no"}, Unauthorized),
        ({"name": "Expired", "message": "late", "expiredAt": 5}, Expired),
        ({"name": "SomethingElse", "message": "odd"}, UcantoError),
        ({"message": "nameless"}, UcantoError),
        ("just a string", UcantoError),
    ],
)
def test_error_outcomes_become_typed_exceptions(error: Any, kind: type[UcantoError]) -> None:
    ran = invoke().cid
    receipt = read_receipt(respond(ran, {"error": error}), ran, PIRI.did)
    assert receipt.ok is None
    assert receipt.error == error
    with pytest.raises(kind) as caught:
        receipt.unwrap()
    assert type(caught.value) is kind
    assert isinstance(ucanto_error(error), kind)


@pytest.mark.parametrize(
    "ocm_change",
    [
        {"out": {"ok": 1, "error": 2}},
        {"out": {}},
        {"out": {"value": 1}},
        {"ran": "bafy"},
        {"iss": b"\xed\x01"},
        {"fx": {"fork": ["x"]}},
        {"fx": {"fork": [], "join": 1}},
        {"prf": "none"},
        {"meta": []},
    ],
)
def test_malformed_receipts_are_refused(ocm_change: dict[str, Any]) -> None:
    ran = invoke().cid
    value = dagcbor.decode(issue_receipt(PIRI, ran, {"ok": {}}).data)
    value["ocm"].update(ocm_change)
    with pytest.raises(MalformedUcan):
        decode_receipt(cbor_block(value))


def test_responses_that_are_not_ucanto_messages_are_refused() -> None:
    ran = invoke()
    receipt = issue_receipt(PIRI, ran.cid, {"ok": {}})
    cases = [b"not a car"]
    car = CarBuilder([receipt.cid])
    car.add(receipt.cid, receipt.data)
    cases.append(car.to_bytes())  # root is not a message
    lost = cbor_block({"ucanto/message@7.0.0": {"report": {str(ran.cid): receipt.cid}}})
    car = CarBuilder([lost.cid])
    car.add(lost.cid, lost.data)
    cases.append(car.to_bytes())  # the reported receipt is not in the CAR
    bad_key = cbor_block({"ucanto/message@7.0.0": {"report": {"nope": receipt.cid}}})
    car = CarBuilder([bad_key.cid])
    car.add(receipt.cid, receipt.data)
    car.add(bad_key.cid, bad_key.data)
    cases.append(car.to_bytes())
    car = CarBuilder([])
    cases.append(car.to_bytes())  # no root
    for body in cases:
        with pytest.raises(MalformedUcan):
            parse_agent_response(body)


def test_agent_message_lists_every_invocation_once_after_the_proofs() -> None:
    first, second = invoke(1), invoke(2)
    proof = cbor_block({"a": 1})
    body = agent_message([first, second], [proof, proof])
    message = parse_agent_message(body)
    assert message.execute == (first.cid, second.cid)
    assert list(message.blocks) == [proof.cid, first.cid, second.cid, message.root]
    with pytest.raises(ValueError, match="at least one"):
        agent_message([])


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (500, {"content-type": "application/vnd.ipld.car"}),
        (200, {"content-type": "text/plain"}),
        (200, {}),
    ],
)
def test_non_car_http_answers_are_transport_errors(status: int, headers: dict[str, str]) -> None:
    from relay.ucan import check_http_response

    with pytest.raises(TransportError) as caught:
        check_http_response(status, headers, b"oops")
    assert caught.value.status == status


def test_allocation_without_address_means_the_bytes_are_there() -> None:
    ran = invoke().cid
    receipt = read_receipt(respond(ran, {"ok": {"size": 11}}), ran, PIRI.did)
    assert allocation(receipt).address is None
    bad = read_receipt(respond(ran, {"ok": {"size": 11, "address": {"url": 1}}}), ran, PIRI.did)
    with pytest.raises(MalformedUcan):
        allocation(bad)


def test_a_location_claim_not_signed_by_the_service_is_refused() -> None:
    ran = invoke().cid
    digest = b"\x12\x20" + bytes(32)
    claim = location_claim(
        MALLORY, CLIENT.did, content=digest, urls=["http://x/"], byte_range=None, space=None
    )
    receipt_block = issue_receipt(PIRI, ran, {"ok": {"site": claim.cid}}, fx=Effects((claim.cid,)))
    receipt = read_receipt(agent_response({ran: receipt_block}, [claim]), ran, PIRI.did)
    with pytest.raises(MalformedUcan, match="not issued by"):
        accepted_location(receipt)
    missing = read_receipt(agent_response({ran: receipt_block}), ran, PIRI.did)
    with pytest.raises(MalformedUcan, match="not in the response"):
        accepted_location(missing)


def test_a_location_claim_naming_the_service_but_signed_by_another_key_is_refused() -> None:
    ran = invoke().cid
    honest = location_claim(
        MALLORY,
        CLIENT.did,
        content=b"\x12\x20" + bytes(32),
        urls=["http://x/"],
        byte_range=None,
        space=None,
    )
    model = dagcbor.decode(honest.data)
    model["iss"] = b"\xed\x01" + PIRI.verifier.public_key
    model["att"][0]["with"] = PIRI.did
    forged = cbor_block(model)
    receipt_block = issue_receipt(PIRI, ran, {"ok": {"site": forged.cid}})
    receipt = read_receipt(agent_response({ran: receipt_block}, [forged]), ran, PIRI.did)
    with pytest.raises(BadSignature):
        accepted_location(receipt)
