"""The ``piri`` blob store against a fake piri node (tests/piri_fake.py) on loopback.

The fake is first checked against the reference vectors (its answers to the vectors'
requests are the vectors' bytes), so the store is tested against piri's behaviour rather
than against itself. The BlobStore contract runs for piri in test_store_contract.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from piri_fake import (
    FakePiri,
    piri_delegation,
    piri_store_config,
    running_fake_piri,
)

from relay.cli import main
from relay.config import ConfigError, load_config
from relay.ipld.base import b58encode
from relay.store.base import BlobNotFound, CorruptBlob, StoreError
from relay.store.piri import PiriRefused, open_piri_store
from relay.ucan import ByteRange, Signer


def sha256_multihash(data: bytes) -> bytes:
    return b"\x12\x20" + hashlib.sha256(data).digest()


BLOB = os.urandom(200_000)
BLOB_MH = sha256_multihash(BLOB)


def blob_url(fake: FakePiri, data: bytes) -> str:
    # Written out from PIRI.md: {piri URL}/blob/{z + base58btc(multihash)}.
    return f"{fake.url}/blob/z{b58encode(sha256_multihash(data))}"


Stored = list[tuple[bytes, tuple[str, ...], ByteRange | None]]


def recorder() -> tuple[Stored, Any]:
    stored: Stored = []

    async def on_stored(mh: bytes, urls: Sequence[str], span: ByteRange | None) -> None:
        stored.append((mh, tuple(urls), span))

    return stored, on_stored


# -- the fake speaks piri's bytes -------------------------------------------------------------


def test_the_fake_answers_the_vector_requests_with_the_vector_bytes(vectors_dir: Path) -> None:
    vectors = json.loads((vectors_dir / "ucan" / "piri-vectors.json").read_text())
    piri = Signer.from_seed(bytes.fromhex(vectors["keys"]["piri"]["seed"]))
    # The vectors' piri ran at http://127.0.0.1:3000 and gave the upload address an expiry
    # of 1800086400; the allocate invocation expires at 1800000000, so piri's clock was
    # earlier: an hour earlier here, with the TTL that gives that expiry.
    fake = FakePiri(piri, "http://127.0.0.1:3000", clock=lambda: 1_799_996_400)
    fake.upload_ttl_seconds = 1_800_086_400 - 1_799_996_400
    allocate = bytes.fromhex(vectors["allocate"]["requestCar"])
    assert fake.service(allocate).hex() == vectors["allocate"]["responseCar"]
    fake.blobs[bytes.fromhex(vectors["blob"]["multihash"])] = b"hello world"  # the PUT
    accept = bytes.fromhex(vectors["accept"]["requestCar"])
    assert fake.service(accept).hex() == vectors["accept"]["responseCar"]
    assert fake.abilities == ["blob/allocate", "blob/accept"]


async def test_the_fake_refuses_other_content_types_like_piri(vectors_dir: Path) -> None:
    vector = json.loads((vectors_dir / "ucan" / "piri-vectors.json").read_text())[
        "wrongContentType"
    ]
    async with running_fake_piri() as fake:
        request = urllib.request.Request(
            fake.url + "/", b"x", method="POST", headers={"Content-Type": "application/cbor"}
        )

        def post() -> tuple[int, str, str | None]:
            try:
                urllib.request.urlopen(request, timeout=10)
            except urllib.error.HTTPError as error:
                with error:
                    return error.code, error.read().decode(), error.headers.get("accept")
            raise AssertionError("the fake accepted a non-CAR request")

        status, body, accept = await trio.to_thread.run_sync(post)
    assert (status, body) == (vector["status"], vector["body"])
    assert accept == vector["headers"]["accept"]


# -- writes ------------------------------------------------------------------------------------


async def test_put_allocates_uploads_accepts_and_reports_piris_claim() -> None:
    relay = Signer.generate()
    stored, on_stored = recorder()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, relay.did))
        async with open_piri_store(config, signer=relay, on_stored=on_stored) as store:
            await store.put(BLOB_MH, BLOB)
            await store.put(BLOB_MH, BLOB)  # known here: piri is only asked whether it holds it
            assert store.piri_statistics().invocations == 3
            assert store.statistics().blobs_deduplicated == 1
        assert fake.abilities == ["blob/allocate", "blob/accept", "blob/allocate"]
        assert fake.blobs == {BLOB_MH: BLOB}
        assert fake.puts == 1
    # piri's claim says {offset 0, length size}: the whole blob, recorded as whole.
    assert stored == [(BLOB_MH, (blob_url(fake, BLOB),), None)]


async def test_a_blob_piri_already_holds_is_accepted_without_a_put() -> None:
    relay = Signer.generate()
    stored, on_stored = recorder()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, relay.did))
        async with open_piri_store(config, signer=relay) as first:
            await first.put(BLOB_MH, BLOB)
        async with open_piri_store(config, signer=relay, on_stored=on_stored) as second:
            await second.put(BLOB_MH, BLOB)  # a fresh process: piri is asked again
            statistics = second.piri_statistics()
        assert fake.puts == 1
        assert fake.abilities == ["blob/allocate", "blob/accept"] * 2
    assert (statistics.uploads, statistics.uploads_skipped) == (0, 1)
    assert stored == [(BLOB_MH, (blob_url(fake, BLOB),), None)]


async def test_concurrent_puts_of_one_blob_run_the_protocol_once() -> None:
    relay = Signer.generate()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, relay.did))
        async with open_piri_store(config, signer=relay) as store:
            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(store.put, BLOB_MH, BLOB)
            assert store.statistics().blobs_deduplicated == 4
        assert fake.abilities == ["blob/allocate", "blob/accept"]


async def test_a_delegation_from_another_key_is_refused_as_unauthorized() -> None:
    relay = Signer.generate()
    stored, on_stored = recorder()
    stranger = Signer.generate()  # not the piri node: its delegation proves nothing there
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(stranger, relay.did))
        async with open_piri_store(config, signer=relay, on_stored=on_stored) as store:
            with pytest.raises(PiriRefused) as caught:
                await store.put(BLOB_MH, BLOB)
            assert store.statistics().blobs_written == 0
        assert fake.blobs == {}
        assert fake.abilities == ["blob/allocate"]  # a refusal is not retried
    assert caught.value.name == "Unauthorized"
    assert isinstance(caught.value, StoreError)
    assert str(caught.value).startswith(
        'the piri node refused blob/allocate: Unauthorized: Claim {"can":"blob/allocate"}'
    )
    assert stored == []


async def test_a_delegation_without_blob_accept_fails_at_accept() -> None:
    relay = Signer.generate()
    async with running_fake_piri() as fake:
        only_allocate = piri_delegation(fake.signer, relay.did, "blob/allocate")
        config = piri_store_config(fake.url, fake.did, only_allocate)
        async with open_piri_store(config, signer=relay) as store:
            with pytest.raises(PiriRefused, match="refused blob/accept: Unauthorized"):
                await store.put(BLOB_MH, BLOB)


async def test_an_expired_delegation_is_refused() -> None:
    relay = Signer.generate()
    async with running_fake_piri() as fake:
        expired = piri_delegation(fake.signer, relay.did, expiration=1_000_000_000)
        async with open_piri_store(
            piri_store_config(fake.url, fake.did, expired), signer=relay
        ) as store:
            with pytest.raises(PiriRefused, match="Unauthorized"):
                await store.put(BLOB_MH, BLOB)


async def test_a_delegation_for_another_did_is_refused_at_open() -> None:
    relay, other = Signer.generate(), Signer.generate()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, other.did))
        with pytest.raises(ValueError, match=f"relay's key is {relay.did}"):
            async with open_piri_store(config, signer=relay):
                pass


async def test_receipts_not_signed_by_the_configured_piri_are_not_believed() -> None:
    relay, impostor = Signer.generate(), Signer.generate()
    async with running_fake_piri() as fake:
        # relay believes piri is `impostor`: the fake's receipts are signed by another key.
        delegation = piri_delegation(impostor, relay.did)
        async with open_piri_store(
            piri_store_config(fake.url, impostor.did, delegation), signer=relay
        ) as store:
            with pytest.raises(StoreError, match="cannot be believed"):
                await store.put(BLOB_MH, BLOB)


# -- failures of the node ------------------------------------------------------------------------


async def test_5xx_answers_are_retried_until_one_succeeds() -> None:
    relay = Signer.generate()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, relay.did))
        async with open_piri_store(config, signer=relay) as store:
            fake.fail_next = 2
            await store.put(BLOB_MH, BLOB)
            assert store.piri_statistics().retries == 2
            fake.fail_next = 1
            assert await store.get(BLOB_MH) == BLOB
            assert store.piri_statistics().retries == 3


async def test_a_node_that_stays_down_is_retried_a_bounded_number_of_times() -> None:
    with trio.socket.socket() as probe:  # a port with nothing listening
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay, piri = Signer.generate(), Signer.generate()
    config = piri_store_config(
        f"http://127.0.0.1:{port}", piri.did, piri_delegation(piri, relay.did), max_attempts=3
    )
    async with open_piri_store(config, signer=relay) as store:
        with trio.fail_after(5):
            with pytest.raises(StoreError, match=r"POST .* after 3 attempts: cannot connect"):
                await store.put(BLOB_MH, BLOB)
        assert store.piri_statistics().retries == 2


async def test_bytes_altered_at_the_node_are_corrupt_for_whole_and_ranged_reads() -> None:
    relay = Signer.generate()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, relay.did))
        async with open_piri_store(config, signer=relay) as store:
            await store.put(BLOB_MH, BLOB)
            fake.corrupt.add(BLOB_MH)
            with pytest.raises(CorruptBlob):
                await store.get(BLOB_MH)
            with pytest.raises(CorruptBlob):
                await store.get(BLOB_MH, 100, 10, expect=sha256_multihash(BLOB[100:110]))
            fake.corrupt.clear()
            part = BLOB[100:110]
            assert await store.get(BLOB_MH, 100, 10, expect=sha256_multihash(part)) == part


async def test_ranged_reads_of_one_blob_fetch_it_once() -> None:
    relay = Signer.generate()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, relay.did))
        async with open_piri_store(config, signer=relay) as store:
            await store.put(BLOB_MH, BLOB)
            before = fake.requests
            for start in range(0, 50_000, 10_000):
                part = BLOB[start : start + 1000]
                got = await store.get(BLOB_MH, start, 1000, expect=sha256_multihash(part))
                assert got == part
            assert fake.requests == before + 1


# -- configuration, the key and `relay did` -------------------------------------------------------


def test_piri_settings_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    piri = Signer.generate()
    config_file = tmp_path / "relay.toml"
    config_file.write_text(
        f'[store]\nkind = "piri"\n[store.piri]\nendpoint = "http://127.0.0.1:3000"\n'
        f'did = "{piri.did}"\ndelegation_file = "d.txt"\n'
    )
    environ = {"RELAY_PIRI_SPACE": "did:key:z6MkSpace", "RELAY_PIRI_KEY_FILE": "/k/relay.pem"}
    config = load_config(config_file, environ=environ)
    assert config.store.piri is not None
    assert (config.store.piri.endpoint, config.store.piri.did) == (
        "http://127.0.0.1:3000",
        piri.did,
    )
    assert config.store.piri.delegation_file == "d.txt"
    assert config.store.piri.delegation is None
    assert config.store.piri.space == "did:key:z6MkSpace"
    assert config.store.piri.key_file == "/k/relay.pem"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"RELAY_PIRI_DID": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"},
            "endpoint",
        ),
        ({"RELAY_PIRI_ENDPOINT": "http://piri:3000"}, "needs store.piri.did"),
        ({"RELAY_PIRI_ENDPOINT": "http://piri:3000", "RELAY_PIRI_DID": "did:web:x"}, "did:key"),
        ({"RELAY_PIRI_ENDPOINT": "ftp://piri", "RELAY_PIRI_DID": "did:key:z6Mk"}, "http"),
    ],
)
def test_incomplete_piri_settings_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ={"RELAY_STORE": "piri", **environ})


def test_relay_did_generates_a_private_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("RELAY_"):
            monkeypatch.delenv(name)
    assert main(["did", "--data", str(tmp_path / "data")]) == 0
    first = capsys.readouterr().out.strip()
    key = tmp_path / "data" / "relay.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert first == Signer.from_pem(key.read_bytes()).did
    assert first.startswith("did:key:z6Mk")
    assert main(["did", "--data", str(tmp_path / "data")]) == 0
    assert capsys.readouterr().out.strip() == first


def test_a_corrupt_key_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "relay.pem").write_text("not a key")
    assert main(["did", "--data", str(tmp_path)]) == 1
    assert "relay.pem is not an ed25519 PEM key" in capsys.readouterr().err


async def test_a_blob_piri_lost_is_uploaded_again_by_the_next_put() -> None:
    relay = Signer.generate()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, relay.did))
        async with open_piri_store(config, signer=relay) as store:
            await store.put(BLOB_MH, BLOB)
            del fake.blobs[BLOB_MH]  # lost behind relay's back
            await store.put(BLOB_MH, BLOB)
            assert await store.get(BLOB_MH) == BLOB
            assert store.statistics().blobs_written == 2
        assert fake.puts == 2


async def test_a_read_that_finds_a_blob_missing_or_corrupt_forgets_it() -> None:
    relay = Signer.generate()
    async with running_fake_piri() as fake:
        config = piri_store_config(fake.url, fake.did, piri_delegation(fake.signer, relay.did))
        async with open_piri_store(config, signer=relay) as store:
            await store.put(BLOB_MH, BLOB)
            fake.corrupt.add(BLOB_MH)
            with pytest.raises(CorruptBlob):
                await store.get(BLOB_MH)
            fake.corrupt.clear()
            del fake.blobs[BLOB_MH]
            with pytest.raises(BlobNotFound):
                await store.get(BLOB_MH)
            fake.abilities.clear()
            await store.put(BLOB_MH, BLOB)  # forgotten: the protocol runs without asking
            assert fake.abilities == ["blob/allocate", "blob/accept"]
            assert await store.get(BLOB_MH) == BLOB
        assert fake.puts == 2
