"""ed25519 signers and verifiers, did:key, the DID bytes form and varsig."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.ipld.base import b58encode
from relay.ucan import MalformedUcan, Signer, Verifier, did_from_bytes, did_to_bytes, parse_did_key

RFC8032_TEST1_SEED = bytes.fromhex(
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
)
RFC8032_TEST1_PUBLIC = bytes.fromhex(
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)
RFC8032_TEST1_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_generate_to_pem_from_pem_keeps_the_did() -> None:
    signer = Signer.generate()
    pem = signer.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert Signer.from_pem(pem).did == signer.did
    assert Signer.from_pem(pem.decode()).did == signer.did


def test_two_generated_signers_differ() -> None:
    assert Signer.generate().did != Signer.generate().did


def test_signing_matches_rfc8032() -> None:
    signer = Signer.from_seed(RFC8032_TEST1_SEED)
    assert signer.verifier.public_key == RFC8032_TEST1_PUBLIC
    assert signer.sign(b"") == RFC8032_TEST1_SIGNATURE
    assert signer.sign_varsig(b"") == b"\xed\xa1\x03\x40" + RFC8032_TEST1_SIGNATURE
    assert signer.did == "did:key:z" + b58encode(b"\xed\x01" + RFC8032_TEST1_PUBLIC)


@given(st.binary(max_size=200))
def test_signatures_verify_only_for_the_signed_bytes_and_key(data: bytes) -> None:
    signer = Signer.from_seed(RFC8032_TEST1_SEED)
    other = Signer.from_seed(bytes(32))
    verifier = parse_did_key(signer.did)
    varsig = signer.sign_varsig(data)
    assert verifier.verify_varsig(data, varsig)
    assert not verifier.verify_varsig(data + b"x", varsig)
    assert not parse_did_key(other.did).verify_varsig(data, varsig)
    assert not verifier.verify_varsig(data, b"\xed\xa1\x03\x41" + varsig[4:])


def test_pem_of_another_key_type_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    pem = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(MalformedUcan, match="not ed25519"):
        Signer.from_pem(pem)
    with pytest.raises(MalformedUcan):
        Signer.from_pem(b"not a pem")


def test_signer_repr_does_not_leak_the_key() -> None:
    signer = Signer.from_seed(RFC8032_TEST1_SEED)
    assert RFC8032_TEST1_SEED.hex() not in repr(signer)
    assert signer.did in repr(signer)


def test_signer_archive_with_a_mismatched_public_key_is_refused() -> None:
    archive = Signer.from_seed(RFC8032_TEST1_SEED).archive()
    forged = archive[:34] + b"\xed\x01" + bytes(32)
    with pytest.raises(MalformedUcan, match="does not match"):
        Signer.parse("M" + base64.b64encode(forged).decode())


@pytest.mark.parametrize(
    "did",
    [
        "did:web:example.com",
        "did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX!",
        "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",  # secp256k1
        "key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX",
    ],
)
def test_parse_did_key_refuses_what_is_not_an_ed25519_did_key(did: str) -> None:
    with pytest.raises(MalformedUcan):
        parse_did_key(did)


def test_non_key_dids_travel_as_their_text() -> None:
    assert did_to_bytes("did:web:up.storacha.network") == b"\x9d\x1a" + b"web:up.storacha.network"
    assert did_from_bytes(b"\x9d\x1aweb:up.storacha.network") == "did:web:up.storacha.network"


@given(st.binary(min_size=32, max_size=32))
def test_did_key_bytes_round_trip(public_key: bytes) -> None:
    did = Verifier(public_key).did
    assert did_to_bytes(did) == b"\xed\x01" + public_key
    assert did_from_bytes(did_to_bytes(did)) == did
    assert parse_did_key(did).public_key == public_key


@given(st.text(min_size=1).filter(lambda s: "\x00" not in s))
def test_other_did_bytes_round_trip(method_specific: str) -> None:
    did = "did:" + method_specific
    assert did_from_bytes(did_to_bytes(did)) == did


def test_importing_relay_ucan_loads_no_io_framework() -> None:
    import subprocess
    import sys

    probe = "import sys, relay.ucan; print(sorted({'trio', 'h11'} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
