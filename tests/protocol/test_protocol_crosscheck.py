"""CPython-only cross-checks of hugproto against independent implementations."""

import hmac
import json
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hugproto import frames
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
    for v in VECTORS["valid"]:
        data = bytes.fromhex(v["hex"])
        session_key = hmac.new(key, labels[v["from"]] + nonces, "sha256").digest()
        assert data[-4:] == hmac.new(session_key, data[:-4], "sha256").digest()[:4], v["name"]
        assert data[0] >> 5 == frames.VERSION
        assert struct.unpack_from("<I", data, 1)[0] == v["counter"]
        assert len(data) <= 20


def test_auth_vector_recomputed_with_stdlib_hmac() -> None:
    auth = next(v for v in VECTORS["special"] if v["type"] == "Auth")
    data = bytes.fromhex(auth["hex"])
    key = bytes.fromhex(auth["key"])
    band_nonce = bytes.fromhex(VECTORS["band_nonce"])
    expected = hmac.new(key, b"hug auth" + data[:9] + band_nonce, "sha256").digest()[:4]
    assert data[9:] == expected
