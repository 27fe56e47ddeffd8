"""CPython-only cross-checks of hugproto against independent implementations."""

import hmac
import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from hugproto import frames, x25519
from hugproto.mac import Hmac, equal

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "frames.json").read_text())


@given(key=st.binary(min_size=0, max_size=100), parts=st.lists(st.binary(max_size=80), max_size=4))
def test_hmac_matches_cpython_hmac(key: bytes, parts: list[bytes]) -> None:
    assert Hmac(key).digest(*parts) == hmac.new(key, b"".join(parts), "sha256").digest()


@given(a=st.binary(max_size=8), b=st.binary(max_size=8))
def test_mac_compare(a: bytes, b: bytes) -> None:
    assert equal(a, b) == (a == b)


def test_vector_macs_recomputed_with_stdlib_hmac() -> None:
    key = bytes.fromhex(VECTORS["band_key"])
    nonces = bytes.fromhex(VECTORS["band_nonce"]) + bytes.fromhex(VECTORS["phone_nonce"])
    labels = {"band": b"hug b2p", "phone": b"hug p2b"}
    formats = {"AuthOk": "<BBB", "Press": "<HBBHHB", "Felt": "<H", "Status": "<BBHH", "Play": "<BBBBH"}
    formats.update({"Ack": "<H", "SetTime": "<Ih", "SetConfig": "<BH", "Identify": "<B", "Unpair": "<"})
    for v in VECTORS["valid"]:
        data = bytes.fromhex(v["hex"])
        mac_key = hmac.new(key, labels[v["from"]] + b" mac" + nonces, "sha256").digest()
        assert data[-4:] == hmac.new(mac_key, data[:-4], "sha256").digest()[:4], v["name"]
        enc_key = hmac.new(key, labels[v["from"]] + b" enc" + nonces, "sha256").digest()
        stream = hmac.new(enc_key, data[:5], "sha256").digest()
        plain = bytes(c ^ k for c, k in zip(data[5:-4], stream, strict=False))
        assert list(struct.unpack(formats[v["type"]], plain)) == v["fields"], v["name"]
        assert data[0] >> 5 == frames.VERSION == 2
        assert struct.unpack_from("<I", data, 1)[0] == v["counter"]
        assert len(data) <= 20


def test_auth_vector_recomputed_with_stdlib_hmac() -> None:
    auth = next(v for v in VECTORS["special"] if v["type"] == "Auth")
    data = bytes.fromhex(auth["hex"])
    key = bytes.fromhex(auth["key"])
    band_nonce = bytes.fromhex(VECTORS["band_nonce"])
    expected = hmac.new(key, b"hug auth" + data[:9] + band_nonce, "sha256").digest()[:4]
    assert data[9:] == expected


@given(secret=st.binary(min_size=32, max_size=32), peer=st.binary(min_size=32, max_size=32))
def test_x25519_matches_cryptography(secret: bytes, peer: bytes) -> None:
    ours = X25519PrivateKey.from_private_bytes(secret)
    assert x25519.public_key(secret) == ours.public_key().public_bytes_raw()
    pub = X25519PrivateKey.from_private_bytes(peer).public_key().public_bytes_raw()
    assert x25519.x25519(secret, pub) == ours.exchange(X25519PublicKey.from_public_bytes(pub))


def test_x25519_rfc7748_thousand_iterations() -> None:
    k = u = x25519.BASE
    for _ in range(1000):
        k, u = x25519.x25519(k, u), k
    assert k.hex() == "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"


def test_pairing_vector_key_recomputed_with_stdlib_hmac() -> None:
    p = VECTORS["pairing"]
    shared = X25519PrivateKey.from_private_bytes(bytes.fromhex(p["phone_secret"])).exchange(
        X25519PublicKey.from_public_bytes(bytes.fromhex(p["band_pub"]))
    )
    assert shared.hex() == p["shared"]
    parts = bytes.fromhex(VECTORS["band_nonce"] + VECTORS["phone_nonce"] + p["phone_pub"] + p["band_pub"])
    assert hmac.new(shared, b"hug band key" + parts, "sha256").digest()[:16].hex() == p["band_key"]
    assert frames.pairing_code(bytes.fromhex(p["band_key"])) == p["code"]
