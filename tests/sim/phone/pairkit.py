"""Pairing with a band over raw bleak in tests: X25519 by `cryptography` (independent of the band's)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from hugproto import frames, pairing


async def pair(
    write: Callable[[bytes], Awaitable[object]], next_event: Callable[[], Awaitable[bytes]], band_nonce: bytes
) -> tuple[bytes, frames.Session]:
    """Key exchange and PairConfirm; returns the band key and the session it opened (AuthOk next)."""
    secret = X25519PrivateKey.generate()
    pub = secret.public_key().public_bytes_raw()
    for half in (0, 1):
        await write(pairing.encode_pub(frames.PAIR_PUB, half, pub))
    halves = pairing.PubHalves()
    while not halves.add(*pairing.decode_pub(await next_event(), frames.BAND_PUB)):
        pass
    band_pub = bytes(halves.pub)
    nonce = os.urandom(frames.NONCE_LEN)
    shared = secret.exchange(X25519PublicKey.from_public_bytes(band_pub))
    key = pairing.band_key(shared, band_nonce, nonce, pub, band_pub)
    await write(pairing.encode_confirm(key, band_nonce, nonce))
    return key, frames.Session(key, band_nonce, nonce, frames.PHONE)
