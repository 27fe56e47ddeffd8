"""Pairing inside the band's pairing window: X25519, so the band key never crosses the air.

    phone -> band  PairPub(0), PairPub(1)   the phone's fresh X25519 public key A, in halves
    band -> phone  BandPub(0), BandPub(1)   the band's fresh public key B (notified)
    phone -> band  PairConfirm              nonce_p and a tag under the new band key
    band -> phone  AuthOk                   the first frame of a session under the new key
    band key = HMAC(S, "hug band key" | nonce_b | nonce_p | A | B)[:16], S = X25519(a, B)

A recording of all of it shows A, B, both nonces and a tag: without a or b, nothing. The
band buzzes ``frames.pairing_code(key)`` times (2..5) when it is paired (and on Identify); the
phone shows the same number, so a parent sees that the band that buzzed holds the phone's key.
The band imports this module (and x25519) only inside its pairing window.
"""

from hugproto import frames
from hugproto.compat import const
from hugproto.errors import Malformed, Unauthenticated
from hugproto.mac import Hmac, equal

_HALF = const(16)
_KEY_LABEL = b"hug band key"
_CONFIRM_LABEL = b"hug pair"


def encode_pub(kind: int, half: int, pub: bytes) -> bytes:
    """One PairPub (phone) or BandPub (band) frame: half 0 or 1 of a 32-byte public key."""
    if len(pub) != frames.PUB_LEN:
        raise Malformed("public key must be %d bytes" % frames.PUB_LEN)
    if kind != frames.PAIR_PUB and kind != frames.BAND_PUB:
        raise Malformed("not a public-key frame kind: 0x%02x" % kind)
    return bytes((frames.VERSION << 5 | kind, half)) + pub[_HALF * half : _HALF * half + _HALF]


def decode_pub(data: bytes, kind: int) -> tuple[int, bytes]:
    """(half, 16 bytes) of a PairPub or BandPub frame."""
    if frames.frame_kind(data) != kind:
        raise Malformed("expected frame kind 0x%02x, got 0x%02x" % (kind, data[0] & 0x1F))
    if data[1] > 1:
        raise Malformed("public key half must be 0 or 1, got %d" % data[1])
    return data[1], bytes(data[2:])


class PubHalves:
    """Collects the two halves of a public key; each half once."""

    def __init__(self) -> None:
        self.pub = bytearray(frames.PUB_LEN)
        self._have = 0

    def add(self, half: int, part: bytes) -> bool:
        """Take one half; True once both are in."""
        if self._have & (1 << half):
            raise Malformed("public key half %d sent twice" % half)
        self.pub[_HALF * half : _HALF * half + _HALF] = part
        self._have |= 1 << half
        return self._have == 3


def band_key(
    shared: bytes, band_nonce: bytes, phone_nonce: bytes, phone_pub: bytes, band_pub: bytes
) -> bytes:
    if shared == bytes(32):
        raise Malformed("public key of low order (the shared secret would be zero)")
    key = Hmac(shared).digest(_KEY_LABEL, band_nonce, phone_nonce, phone_pub, band_pub)[: frames.KEY_LEN]
    if key == frames.UNPAIRED_KEY:  # 2^-128: never in practice, but it means "unpaired"
        raise Malformed("the derived key is the unpaired key")
    return key


def _tag(key: bytes, band_nonce: bytes, phone_nonce: bytes) -> bytes:
    header = bytes((frames.VERSION << 5 | frames.PAIR_CONFIRM,))
    return Hmac(key).digest(_CONFIRM_LABEL, header, phone_nonce, band_nonce)[: frames.MAC_LEN]


def encode_confirm(key: bytes, band_nonce: bytes, phone_nonce: bytes) -> bytes:
    if len(phone_nonce) != frames.NONCE_LEN:
        raise Malformed("nonce must be %d bytes" % frames.NONCE_LEN)
    header = bytes((frames.VERSION << 5 | frames.PAIR_CONFIRM,))
    return header + phone_nonce + _tag(key, band_nonce, phone_nonce)


def confirm_nonce(data: bytes) -> bytes:
    """The phone's nonce in a PairConfirm frame (not yet verified: see check_confirm)."""
    if frames.frame_kind(data) != frames.PAIR_CONFIRM:
        raise Malformed("expected a PairConfirm frame, got kind 0x%02x" % (data[0] & 0x1F))
    return bytes(data[1 : 1 + frames.NONCE_LEN])


def check_confirm(data: bytes, key: bytes, band_nonce: bytes) -> None:
    if not equal(_tag(key, band_nonce, confirm_nonce(data)), bytes(data[1 + frames.NONCE_LEN :])):
        raise Unauthenticated("PairConfirm failed authentication")


class BandPairing:
    """The band's side of one pairing attempt on one connection.

    ``on_pub`` takes the phone's two PairPub frames; ``work(n)`` then runs n steps of the two X25519
    ladders (the band's public key, the shared secret) per call, so the band's loop keeps going;
    once it returns True, ``frames()`` are the BandPub frames to notify.
    """

    def __init__(self, secret: bytes) -> None:
        """``secret``: 32 fresh random bytes, the band's X25519 key for this attempt."""
        from hugproto.x25519 import BASE, Ladder

        self._secret = bytes(secret)
        self._ladders = [Ladder(self._secret, BASE)]
        self.phone = PubHalves()
        self.band_pub = b""
        self._shared = b""

    @property
    def keyed(self) -> bool:
        """Both halves of the phone's key are in."""
        return len(self._ladders) == 2

    @property
    def busy(self) -> bool:
        """The phone's key is in and the ladders are not done."""
        return self.keyed and not self.band_pub

    def on_pub(self, data: bytes) -> bool:
        """A PairPub frame; True once both halves are in (then call ``work`` until it is True)."""
        if len(self._ladders) == 2:
            raise Malformed("this connection already sent its public key")
        half, part = decode_pub(data, frames.PAIR_PUB)
        if not self.phone.add(half, part):
            return False
        from hugproto.x25519 import Ladder

        self._ladders.append(Ladder(self._secret, bytes(self.phone.pub)))
        return True

    def work(self, steps: int) -> bool:
        """Advance the ladders; True when band_pub is ready. Raises Malformed for a low-order key."""
        if self.band_pub:
            return True
        mine = self._ladders[0]
        if not mine.done:
            mine.step(steps)
            return False
        if len(self._ladders) < 2 or not self._ladders[1].step(steps):
            return False
        shared = self._ladders[1].result()
        if shared == bytes(32):
            raise Malformed("public key of low order")
        self._shared = shared
        self.band_pub = mine.result()
        return True

    def frames(self) -> tuple[bytes, bytes]:
        return encode_pub(frames.BAND_PUB, 0, self.band_pub), encode_pub(frames.BAND_PUB, 1, self.band_pub)

    def finish(self, data: bytes, band_nonce: bytes) -> tuple[bytes, bytes]:
        """Check the phone's PairConfirm; return (band key, phone nonce)."""
        if not self.band_pub:
            raise Malformed("PairConfirm before the key exchange")
        phone_nonce = confirm_nonce(data)
        key = band_key(self._shared, band_nonce, phone_nonce, bytes(self.phone.pub), self.band_pub)
        check_confirm(data, key, band_nonce)
        return key, phone_nonce
