"""The ucanto HTTP transport: agent messages carried in CARv1 bodies.

A request is ``POST`` with ``Content-Type: application/vnd.ipld.car`` (exactly; piri
answers anything else with 415). Its body is a CAR whose single root is the message block
``{"ucanto/message@7.0.0": {"execute": [invocation links]}}``; before the root come every
proof block and every invocation block (the service cannot fetch proofs). The answer is a
CAR rooted at ``{"ucanto/message@7.0.0": {"report": {"<invocation CID>": receipt link}}}``
holding the receipts and whatever they link (invocations, proofs, forked effects such as
location claims). A refusal is a receipt with an error ``out``, never an HTTP error.

Both directions are here, so a fake service in a test speaks the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from relay.ipld import dagcbor
from relay.ipld.block import Block, cbor_block
from relay.ipld.car import CarBuilder, CarError, read_car
from relay.ipld.cid import CID, CIDError
from relay.ucan.errors import (
    MalformedUcan,
    MissingReceipt,
    TransportError,
    UnsupportedMediaType,
    WrongInvocation,
)
from relay.ucan.receipt import Receipt, decode_receipt

CAR_MEDIA_TYPE: Final = "application/vnd.ipld.car"
REQUEST_HEADERS: Final = {"content-type": CAR_MEDIA_TYPE, "accept": CAR_MEDIA_TYPE}
MESSAGE_TAG: Final = "ucanto/message@7.0.0"


@dataclass(frozen=True, slots=True, eq=False)
class AgentMessage:
    """A decoded message: the invocations to run and/or the receipts reported, plus every
    block of the CAR by CID (the message block included)."""

    root: CID
    execute: tuple[CID, ...]
    report: Mapping[CID, CID]
    blocks: Mapping[CID, bytes]


def _message_car(body: Mapping[str, Any], blocks: Iterable[Block]) -> bytes:
    root = cbor_block({MESSAGE_TAG: dict(body)})
    car = CarBuilder([root.cid])
    for block in blocks:
        car.add(block.cid, block.data)
    car.add(root.cid, root.data)
    return car.to_bytes()


def agent_message(invocations: Sequence[Block], proof_blocks: Iterable[Block] = ()) -> bytes:
    """The request body executing ``invocations``: proofs first, then the invocations,
    the message root last (ucanto's order), each block once."""
    if not invocations:
        raise ValueError("an agent message executes at least one invocation")
    return _message_car(
        {"execute": [block.cid for block in invocations]}, [*proof_blocks, *invocations]
    )


def agent_response(reports: Mapping[CID, Block], blocks: Iterable[Block] = ()) -> bytes:
    """A service's answer: ``reports`` maps each invocation to its receipt block;
    ``blocks`` (the invocations, proofs and effects the receipts link) go first, in order,
    and each receipt right after them."""
    ordered = [*blocks, *reports.values()]
    body = {"report": {str(invocation): receipt.cid for invocation, receipt in reports.items()}}
    return _message_car(body, ordered)


def parse_agent_message(car_bytes: bytes) -> AgentMessage:
    """Decode a message CAR (request or response), checking every block against its CID."""
    try:
        header, car_blocks = read_car(car_bytes)
        blocks = {block.cid: block.data for block in car_blocks}
    except CarError as exc:
        raise MalformedUcan(f"the ucanto message is not a valid CAR: {exc}") from exc
    if len(header.roots) != 1:
        raise MalformedUcan("a ucanto message CAR has exactly one root")
    root = header.roots[0]
    if root not in blocks:
        raise MalformedUcan(f"the message root {root} is not in the CAR")
    try:
        value = dagcbor.decode(blocks[root])
    except ValueError as exc:
        raise MalformedUcan(f"the message root is not DAG-CBOR: {exc}") from exc
    body = value.get(MESSAGE_TAG) if isinstance(value, dict) else None
    if not isinstance(body, dict):
        raise MalformedUcan(f"the message root is not a {MESSAGE_TAG} message")
    execute, report = body.get("execute", []), body.get("report", {})
    if not isinstance(execute, list) or not all(isinstance(link, CID) for link in execute):
        raise MalformedUcan("'execute' is a list of links")
    if not isinstance(report, dict) or not all(isinstance(v, CID) for v in report.values()):
        raise MalformedUcan("'report' maps invocation CIDs to receipt links")
    try:
        reported = {CID.decode(key): receipt for key, receipt in report.items()}
    except CIDError as exc:
        raise MalformedUcan(f"a 'report' key is not a CID: {exc}") from exc
    return AgentMessage(root, tuple(execute), reported, blocks)


def parse_agent_response(car_bytes: bytes) -> dict[CID, Receipt]:
    """The receipts of a response, by the invocation each reports on.

    Each receipt's ``ran`` must be the invocation it is reported under (else
    ``WrongInvocation``). Issuer and signature are the caller's to check with
    ``Receipt.verify``: only the caller knows whom it invoked.
    """
    message = parse_agent_message(car_bytes)
    receipts: dict[CID, Receipt] = {}
    for invocation, receipt_cid in message.report.items():
        data = message.blocks.get(receipt_cid)
        if data is None:
            raise MalformedUcan(f"the receipt {receipt_cid} is not in the response CAR")
        receipt = decode_receipt(Block(receipt_cid, data), message.blocks)
        if receipt.ran != invocation:
            raise WrongInvocation(
                f"receipt {receipt_cid} is reported for {invocation} but ran {receipt.ran}"
            )
        receipts[invocation] = receipt
    return receipts


def read_receipt(car_bytes: bytes, invocation: CID, issuer: str) -> Receipt:
    """The checked receipt for ``invocation`` in a response from ``issuer``: present,
    ran that invocation, issued and signed by ``issuer``. Its outcome is not unwrapped."""
    receipt = parse_agent_response(car_bytes).get(invocation)
    if receipt is None:
        raise MissingReceipt(f"the response holds no receipt for {invocation}")
    receipt.verify(issuer, ran=invocation)
    return receipt


def check_http_response(status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``TransportError`` unless this HTTP answer can hold a ucanto response:
    status 200 and a CAR content type. ``headers`` keys are lowercase."""
    text = body[:500].decode("utf-8", "replace").strip()
    if status == 415:
        raise UnsupportedMediaType(status, text)
    if status != 200:
        raise TransportError(status, text)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != CAR_MEDIA_TYPE:
        raise TransportError(status, f"response content type {content_type!r} is not a CAR")
