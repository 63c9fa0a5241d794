"""Every value in piri-vectors.json, reproduced byte for byte.

The vectors were produced by the reference JavaScript packages (ucanto, @ipld/dag-ucan,
@storacha/client) from fixed ed25519 seeds; ed25519 signatures are deterministic, so the
same keys and fields must give the same blocks, CIDs, signing inputs and CARs.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from relay.ipld import dagcbor, multihash
from relay.ipld.block import Block
from relay.ipld.car import read_car
from relay.ipld.cid import CID, blob_key
from relay.ipld.varint import encode_varint
from relay.ucan import (
    REQUEST_HEADERS,
    ByteRange,
    Capability,
    Effects,
    HandlerNotFound,
    Signer,
    Unauthorized,
    UnsupportedMediaType,
    accepted_location,
    agent_message,
    agent_response,
    allocation,
    blob_accept,
    blob_allocate,
    check_http_response,
    dagjson,
    decode_ucan,
    did_to_bytes,
    format_delegation,
    http_put,
    invocation,
    issue,
    issue_receipt,
    location_claim,
    parse_agent_message,
    parse_agent_response,
    parse_delegation,
    parse_did_key,
    put_signer,
    read_receipt,
)

Vectors = dict[str, Any]

# The fields the vectors were made with (visible in their decoded blocks).
ALLOCATE_EXPIRATION = 1_800_000_000
HELLO = b"hello world"


def car_cids(car: bytes) -> list[str]:
    _, blocks = read_car(car)
    return [str(block.cid) for block in blocks]


def printed_delegation(archive: bytes) -> str:
    """piri's printed form, built by hand: m + base64(CIDv1, codec CAR, identity mh)."""
    cid = b"\x01" + encode_varint(0x0202) + b"\x00" + encode_varint(len(archive)) + archive
    return "m" + base64.b64encode(cid).decode("ascii").rstrip("=")


def assert_block(block: Block, vector: dict[str, Any]) -> None:
    assert block.data.hex() == vector["bytes"]
    assert str(block.cid) == vector["cid"]


def sign_payload_of(block: Block) -> str:
    return decode_ucan(block).signing_input().decode("ascii")


# -- keys and codecs --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["client", "piri", "space"])
def test_seeds_give_the_vector_dids(piri_vectors: Vectors, name: str) -> None:
    key = piri_vectors["keys"][name]
    signer = Signer.from_seed(bytes.fromhex(key["seed"]))
    assert signer.did == key["did"]
    assert parse_did_key(key["did"]).public_key == signer.verifier.public_key
    if "didBytes" in key:
        assert did_to_bytes(key["did"]).hex() == key["didBytes"]


def test_ucanto_signer_archive_round_trips(piri_vectors: Vectors, client: Signer) -> None:
    text = piri_vectors["keys"]["client"]["signerArchiveB64pad"]
    assert Signer.parse(text).did == client.did
    assert client.format() == text


def test_order_probes_show_dag_json_and_dag_cbor_key_orders(piri_vectors: Vectors) -> None:
    capability = Capability("a", "b/c", {})
    assert dagcbor.encode(capability.to_ipld()).hex() == piri_vectors["dagCborOrderProbe"]
    with_extra_keys = {**capability.to_ipld(), "aaa": 1, "b": 2}
    assert dagjson.encode(with_extra_keys).decode() == piri_vectors["dagJsonOrderProbe"]


def test_blob_multihash_and_key(piri_vectors: Vectors) -> None:
    blob = piri_vectors["blob"]
    assert blob["bytesUtf8"].encode() == HELLO
    assert blob["size"] == len(HELLO)
    assert multihash.sha2_256(HELLO).hex() == blob["multihash"]
    assert blob_key(multihash.sha2_256(HELLO)) == blob["b58"]


# -- the delegation piri prints ------------------------------------------------------------


def test_delegation_is_reproduced(piri_vectors: Vectors, piri: Signer, client: Signer) -> None:
    vector = piri_vectors["delegation"]
    ucan = issue(
        piri,
        client.did,
        [Capability(piri.did, "blob/allocate"), Capability(piri.did, "blob/accept")],
        expiration=None,
    )
    assert_block(ucan.block, vector)
    assert ucan.signing_input().decode() == vector["signPayload"]
    assert ucan.signature.hex() == vector["sig"]


def test_printed_delegation_is_parsed(piri_vectors: Vectors, piri: Signer, client: Signer) -> None:
    vector = piri_vectors["delegation"]
    archive = bytes.fromhex(vector["archiveCar"])
    delegation = parse_delegation(printed_delegation(archive) + "\n")
    assert str(delegation.cid) == vector["cid"]
    assert [block.data.hex() for block in delegation.blocks] == [vector["bytes"]]
    assert delegation.ucan.issuer == piri.did
    assert delegation.ucan.audience == client.did
    assert delegation.ucan.expiration is None
    assert [(c.with_, c.can) for c in delegation.ucan.capabilities] == [
        (piri.did, "blob/allocate"),
        (piri.did, "blob/accept"),
    ]
    delegation.ucan.verify_signature()
    assert delegation.archive() == archive
    assert format_delegation(delegation) == printed_delegation(archive)


# -- blob/allocate ----------------------------------------------------------------------------


def cause_block(client: Signer, space: Signer) -> Block:
    nb = {"blob": {"digest": multihash.sha2_256(HELLO), "size": len(HELLO)}}
    return invocation(
        client,
        client.did,
        Capability(space.did, "space/blob/add", nb),
        proofs=[],
        expiration=ALLOCATE_EXPIRATION,
    )


def allocate_block(vectors: Vectors, client: Signer, piri: Signer, space: Signer) -> Block:
    return blob_allocate(
        client,
        piri.did,
        space=space.did,
        digest=multihash.sha2_256(HELLO),
        size=len(HELLO),
        cause=cause_block(client, space).cid,
        proofs=[CID.decode(vectors["delegation"]["cid"])],
        expiration=ALLOCATE_EXPIRATION,
    )


def test_cause_is_reproduced(piri_vectors: Vectors, client: Signer, space: Signer) -> None:
    assert_block(cause_block(client, space), piri_vectors["cause"])


def test_allocate_invocation_is_reproduced(
    piri_vectors: Vectors, client: Signer, piri: Signer, space: Signer
) -> None:
    vector = piri_vectors["allocate"]
    block = allocate_block(piri_vectors, client, piri, space)
    assert_block(block, vector)
    assert sign_payload_of(block) == vector["signPayload"]
    assert decode_ucan(block).signature.hex() == vector["sig"]


def test_allocate_request_car_is_reproduced(
    piri_vectors: Vectors, client: Signer, piri: Signer, space: Signer
) -> None:
    vector = piri_vectors["allocate"]
    delegation = parse_delegation(
        printed_delegation(bytes.fromhex(piri_vectors["delegation"]["archiveCar"]))
    )
    body = agent_message([allocate_block(piri_vectors, client, piri, space)], delegation.blocks)
    assert body.hex() == vector["requestCar"]
    assert car_cids(body) == [*vector["blocksInOrder"], vector["messageRoot"]]
    message = parse_agent_message(body)
    assert str(message.root) == vector["messageRoot"]
    assert message.blocks[message.root].hex() == vector["messageRootBytes"]
    assert [str(cid) for cid in message.execute] == [vector["cid"]]
    assert vector["requestHeaders"] == REQUEST_HEADERS


def test_allocate_response_is_read_and_verified(piri_vectors: Vectors, piri: Signer) -> None:
    vector = piri_vectors["allocate"]
    body = bytes.fromhex(vector["responseCar"])
    check_http_response(200, vector["responseHeaders"], body)
    receipts = parse_agent_response(body)
    invocation_cid = CID.decode(vector["cid"])
    assert list(receipts) == [invocation_cid]
    receipt = receipts[invocation_cid]
    assert str(receipt.cid) == vector["receipt"]["cid"]
    assert receipt.signed_bytes.hex() == vector["receipt"]["ocmCbor"]
    assert receipt.out == vector["receipt"]["out"]
    assert vector["receipt"]["verifies"] is True
    receipt.verify(piri.did, ran=invocation_cid)
    assert read_receipt(body, invocation_cid, piri.did).cid == receipt.cid
    root = parse_agent_message(body)
    assert str(root.root) == vector["receipt"]["responseRoot"]
    assert root.blocks[root.root].hex() == vector["receipt"]["responseRootBytes"]

    allocated = allocation(receipt)
    address = vector["receipt"]["out"]["ok"]["address"]
    assert allocated.size == 11
    assert allocated.address is not None
    assert allocated.address.url == address["url"]
    assert allocated.address.url.endswith("/blob/" + piri_vectors["blob"]["b58"])
    assert dict(allocated.address.headers) == address["headers"]
    assert allocated.address.expires == address["expires"]


def test_allocate_response_car_is_reproduced(
    piri_vectors: Vectors, client: Signer, piri: Signer, space: Signer
) -> None:
    vector = piri_vectors["allocate"]
    allocate = allocate_block(piri_vectors, client, piri, space)
    receipt = issue_receipt(piri, allocate.cid, vector["receipt"]["out"])
    assert_block(receipt, vector["receipt"])
    delegation_block = Block(
        CID.decode(piri_vectors["delegation"]["cid"]),
        bytes.fromhex(piri_vectors["delegation"]["bytes"]),
    )
    body = agent_response({allocate.cid: receipt}, [delegation_block, allocate])
    assert body.hex() == vector["responseCar"]


# -- http/put --------------------------------------------------------------------------------


def test_http_put_and_its_receipt_are_reproduced(piri_vectors: Vectors) -> None:
    vector = piri_vectors["httpPut"]
    digest = multihash.sha2_256(HELLO)
    assert put_signer(digest).did == vector["derivedDid"]
    block = http_put(digest, len(HELLO), CID.decode(piri_vectors["allocate"]["cid"]))
    assert_block(block, vector)
    assert sign_payload_of(block) == vector["signPayload"]
    decode_ucan(block).verify_signature()

    receipt = issue_receipt(put_signer(digest), block.cid, {"ok": {}})
    assert_block(receipt, vector["receipt"])
    assert dagcbor.encode(dagcbor.decode(receipt.data)["ocm"]).hex() == vector["receipt"]["ocmCbor"]


# -- blob/accept -------------------------------------------------------------------------------


def accept_block(vectors: Vectors, client: Signer, piri: Signer, space: Signer) -> Block:
    return blob_accept(
        client,
        piri.did,
        space=space.did,
        digest=multihash.sha2_256(HELLO),
        size=len(HELLO),
        put=CID.decode(vectors["httpPut"]["cid"]),
        proofs=[CID.decode(vectors["delegation"]["cid"])],
        expiration=None,
    )


def test_accept_invocation_and_request_are_reproduced(
    piri_vectors: Vectors, client: Signer, piri: Signer, space: Signer
) -> None:
    vector = piri_vectors["accept"]
    block = accept_block(piri_vectors, client, piri, space)
    assert_block(block, vector)
    assert sign_payload_of(block) == vector["signPayload"]
    delegation = parse_delegation(
        printed_delegation(bytes.fromhex(piri_vectors["delegation"]["archiveCar"]))
    )
    assert agent_message([block], delegation.blocks).hex() == vector["requestCar"]


def test_accept_response_yields_the_location_claim(
    piri_vectors: Vectors, piri: Signer, space: Signer
) -> None:
    vector = piri_vectors["accept"]
    body = bytes.fromhex(vector["responseCar"])
    assert car_cids(body) == vector["receipt"]["responseBlocks"]
    invocation_cid = CID.decode(vector["cid"])
    receipt = read_receipt(body, invocation_cid, piri.did)
    assert str(receipt.cid) == vector["receipt"]["cid"]
    assert receipt.blocks[receipt.cid].hex() == vector["receipt"]["bytes"]
    assert str(receipt.ok["site"]) == vector["receipt"]["out"]["ok"]["site"]["/"]
    assert [str(cid) for cid in receipt.fx.fork] == vector["receipt"]["fxFork"]

    claim = accepted_location(receipt)
    assert str(claim.cid) == vector["receipt"]["locationClaimCid"]
    assert claim.ucan.data.hex() == vector["receipt"]["locationClaimBytes"]
    assert claim.content.hex() == piri_vectors["blob"]["multihash"]
    assert claim.urls == (piri_vectors["allocate"]["receipt"]["out"]["ok"]["address"]["url"],)
    assert claim.range == ByteRange(0, 11)
    assert claim.space == space.did
    assert claim.ucan.issuer == piri.did
    assert claim.ucan.audience == space.did


def test_accept_response_car_is_reproduced(
    piri_vectors: Vectors, client: Signer, piri: Signer, space: Signer
) -> None:
    vector = piri_vectors["accept"]
    digest = multihash.sha2_256(HELLO)
    claim = location_claim(
        piri,
        space.did,
        content=digest,
        urls=[piri_vectors["allocate"]["receipt"]["out"]["ok"]["address"]["url"]],
        byte_range=ByteRange(0, len(HELLO)),
        space=space.did,
    )
    assert claim.data.hex() == vector["receipt"]["locationClaimBytes"]
    accept = accept_block(piri_vectors, client, piri, space)
    receipt = issue_receipt(piri, accept.cid, {"ok": {"site": claim.cid}}, fx=Effects((claim.cid,)))
    assert_block(receipt, vector["receipt"])
    delegation_block = Block(
        CID.decode(piri_vectors["delegation"]["cid"]),
        bytes.fromhex(piri_vectors["delegation"]["bytes"]),
    )
    body = agent_response({accept.cid: receipt}, [delegation_block, accept, claim])
    assert body.hex() == vector["responseCar"]


# -- the upload-service side (same machinery, other audiences) -----------------------------------


def test_space_blob_add_is_reproduced(piri_vectors: Vectors, client: Signer, space: Signer) -> None:
    vector = piri_vectors["spaceBlobAdd"]
    nb = {"blob": {"digest": multihash.sha2_256(HELLO), "size": len(HELLO)}}
    block = invocation(
        client,
        piri_vectors["conclude"]["uploadServiceDid"],
        Capability(space.did, "space/blob/add", nb),
        proofs=[],
        expiration=ALLOCATE_EXPIRATION,
    )
    assert_block(block, vector)
    assert sign_payload_of(block) == vector["signPayload"]


def test_conclude_is_reproduced(piri_vectors: Vectors, client: Signer) -> None:
    vector = piri_vectors["conclude"]
    put_receipt = CID.decode(piri_vectors["httpPut"]["receipt"]["cid"])
    block = invocation(
        client,
        vector["uploadServiceDid"],
        Capability(client.did, "ucan/conclude", {"receipt": put_receipt}),
        proofs=[],
        expiration=None,
        facts=[{"0": put_receipt}],
    )
    assert_block(block, vector)
    assert sign_payload_of(block) == vector["signPayload"]
    assert vector["blocks"] == [str(put_receipt), str(block.cid)]


# -- the error samples -------------------------------------------------------------------------


def refusal(piri: Signer, ran: CID, out: dict[str, Any]) -> bytes:
    receipt = issue_receipt(piri, ran, out)
    return agent_response({ran: receipt})


def test_missing_proof_becomes_unauthorized(
    piri_vectors: Vectors, client: Signer, piri: Signer, space: Signer
) -> None:
    out = piri_vectors["errorNoProof"]
    ran = allocate_block(piri_vectors, client, piri, space).cid
    receipt = read_receipt(refusal(piri, ran, out), ran, piri.did)
    assert not receipt.is_ok
    with pytest.raises(Unauthorized) as caught:
        receipt.unwrap()
    assert caught.value.name == "Unauthorized"
    assert caught.value.message == out["error"]["message"]
    assert "Delegated capability not found" in str(caught.value)
    with pytest.raises(Unauthorized):
        allocation(receipt)


def test_unknown_ability_becomes_handler_not_found(
    piri_vectors: Vectors, client: Signer, piri: Signer
) -> None:
    out = piri_vectors["errorUnknownHandler"]
    ran = invocation(
        client, piri.did, Capability(piri.did, "foo/bar", {}), proofs=[], expiration=None
    )
    receipt = read_receipt(refusal(piri, ran.cid, out), ran.cid, piri.did)
    with pytest.raises(HandlerNotFound) as caught:
        receipt.unwrap()
    assert caught.value.message == 'service does not implement {can: "foo/bar"} handler'
    assert caught.value.detail["capability"] == {"can": "foo/bar", "with": piri.did}


def test_wrong_content_type_answer_is_a_transport_error(piri_vectors: Vectors) -> None:
    vector = piri_vectors["wrongContentType"]
    with pytest.raises(UnsupportedMediaType) as caught:
        check_http_response(vector["status"], vector["headers"], vector["body"].encode())
    assert caught.value.status == 415
    assert caught.value.message == vector["body"]
