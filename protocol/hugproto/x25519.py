"""X25519 (RFC 7748) on plain integers, for the band: MicroPython has big integers, no EC code.

Only pairing uses it; the band imports it inside its pairing window and drops it afterwards.
Python integers are not constant-time; each pairing uses fresh keys (see README, pairing).
"""

_P = 2**255 - 19


def _int(data: bytes) -> int:
    return int.from_bytes(bytes(data), "little")


def x25519(scalar: bytes, u: bytes) -> bytes:
    """The 32-byte u-coordinate of scalar * u (both 32 bytes, little-endian, as RFC 7748)."""
    if len(scalar) != 32 or len(u) != 32:
        raise ValueError("X25519 takes 32-byte scalars and points")
    p = _P
    k = bytearray(scalar)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    k = _int(k)
    x1 = _int(u) & ((1 << 255) - 1)
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        bit = (k >> t) & 1
        if swap ^ bit:
            x2, x3 = x3, x2
            z2, z3 = z3, z2
        swap = bit
        a = x2 + z2
        b = x2 - z2
        aa = a * a % p
        bb = b * b % p
        e = aa - bb
        da = (x3 - z3) * a % p
        cb = (x3 + z3) * b % p
        x3 = (da + cb) ** 2 % p
        z3 = x1 * ((da - cb) ** 2 % p) % p
        x2 = aa * bb % p
        z2 = e * (aa + 121665 * e) % p
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, p - 2, p) % p).to_bytes(32, "little")


BASE = b"\x09" + bytes(31)


def public_key(secret: bytes) -> bytes:
    return x25519(secret, BASE)
