"""HMAC-SHA256 (RFC 2104) on hashlib.sha256, which both interpreters have.

MicroPython ships no hmac module, so the padded keys are prepared once per key and each
tag costs two short hashes. Tests check every tag against CPython's own hmac module.
"""

import hashlib

from hugproto.compat import const

_BLOCK = const(64)
DIGEST_LEN = const(32)


def _pad(key: bytes, byte: int) -> bytes:
    padded = bytearray(_BLOCK)
    for i in range(len(key)):
        padded[i] = key[i] ^ byte
    for i in range(len(key), _BLOCK):
        padded[i] = byte
    return bytes(padded)


class Hmac:
    """HMAC-SHA256 under one key, ready to tag many messages."""

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        self._inner = _pad(key, 0x36)
        self._outer = _pad(key, 0x5C)

    def digest(self, *parts: bytes | bytearray | memoryview) -> bytes:
        inner = hashlib.sha256(self._inner)
        for part in parts:
            inner.update(part)
        outer = hashlib.sha256(self._outer)
        outer.update(inner.digest())
        return outer.digest()


def equal(a: bytes, b: bytes) -> bool:
    """Compare two MACs in time independent of where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
