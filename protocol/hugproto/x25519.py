"""X25519 (RFC 7748) on plain integers, for the band: MicroPython has big integers, no EC code.

Only pairing uses it; the band imports it inside its pairing window and drops it afterwards, and
runs the ladder a few steps per pass of its main loop (``Ladder``), so it never stalls for the
second or so one X25519 takes on an ESP32 (tests/bench/bench_x25519.py). Python integers are not
constant-time; each pairing uses fresh keys (see README, pairing).
"""

_P = 2**255 - 19
_STEPS = 255
BASE = b"\x09" + bytes(31)


def _int(data: bytes | bytearray) -> int:
    return int.from_bytes(bytes(data), "little")


class Ladder:
    """scalar * u by the Montgomery ladder, ``step(n)`` iterations at a time; then ``result()``."""

    def __init__(self, scalar: bytes, u: bytes) -> None:
        if len(scalar) != 32 or len(u) != 32:
            raise ValueError("X25519 takes 32-byte scalars and points")
        k = bytearray(scalar)
        k[0] &= 248
        k[31] = (k[31] & 127) | 64
        self._k = _int(k)
        self._x1 = _int(u) & ((1 << 255) - 1)
        self._s = (1, 0, self._x1, 1)  # x2, z2, x3, z3
        self._swap = 0
        self._t = _STEPS - 1

    @property
    def done(self) -> bool:
        return self._t < 0

    def step(self, n: int) -> bool:
        """Run up to n more iterations; True once all 255 are done."""
        # MicroPython loads its first 16 locals with one-byte opcodes: the hot ones come first
        x2, z2, x3, z3 = self._s
        a = b = aa = bb = e = da = cb = 0
        p = _P
        x1 = self._x1
        k = self._k
        swap = self._swap
        start = self._t
        end = start - n if start - n > -1 else -1
        for t in range(start, end, -1):
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
        self._s = (x2, z2, x3, z3)
        self._swap = swap
        self._t = end
        return end < 0

    def result(self) -> bytes:
        p = _P
        x2, z2, x3, z3 = self._s
        if self._swap:
            x2, z2 = x3, z3
        return (x2 * pow(z2, p - 2, p) % p).to_bytes(32, "little")


def x25519(scalar: bytes, u: bytes) -> bytes:
    """The 32-byte u-coordinate of scalar * u (both 32 bytes, little-endian, as RFC 7748)."""
    ladder = Ladder(scalar, u)
    ladder.step(_STEPS)
    return ladder.result()


def public_key(secret: bytes) -> bytes:
    return x25519(secret, BASE)
