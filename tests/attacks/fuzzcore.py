"""A seeded fuzz loop over every hugproto decoder. MicroPython-compatible: the same code runs in CPython
(tests/attacks/test_attack_fuzz.py, ~100,000 inputs) and in real MicroPython (test_attack_fuzz_mp.py).

Inputs come from a small xorshift PRNG so both interpreters see the same, reproducible stream:
random bytes, valid headers with random bodies, mutated valid frames (bit flips, byte writes,
truncation, extension) and *authenticated* random bodies (a correct MAC over garbage ciphertext, which
decrypts to garbage fields, so the decryption and the field checks behind the MAC are exercised too),
and the pairing frames (public-key halves, PairConfirm with a right or wrong tag). Every decoder
may only raise hugproto's own ProtocolError subclasses; anything else escapes as an AssertionError
naming the target and input. What a decoder accepts must re-encode to the same bytes, and a rejected
frame must change nothing.
"""

# ruff: noqa: RUF005, B904, PT018 - MicroPython-compatible module (same rules as *_cases.py)
import struct
from binascii import hexlify

from hugproto import adv, frames, pairing
from hugproto.errors import ProtocolError
from hugproto.gatt import HUG_SERVICE_UUID
from hugproto.mac import Hmac

KEY = bytes(range(1, 17))
BAND_NONCE = b"bandnon!"
PHONE_NONCE = b"phonenon"

_SESSION_KINDS = (
    frames.AUTH_OK,
    frames.PRESS,
    frames.FELT,
    frames.STATUS,
    frames.PLAY,
    frames.ACK,
    frames.SET_TIME,
    frames.SET_CONFIG,
    frames.IDENTIFY,
    frames.UNPAIR,
)
_PAIRING_KINDS = (frames.PAIR_PUB, frames.BAND_PUB, frames.PAIR_CONFIRM)
_ALL_KINDS = _SESSION_KINDS + (frames.STATE, frames.AUTH) + _PAIRING_KINDS
_BAND_KINDS = (frames.AUTH_OK, frames.PRESS, frames.FELT, frames.STATUS)
_AD_TYPES = (0x01, 0x02, 0x03, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x16, 0xFF, 0x00)


class Rng:
    """xorshift32: tiny, identical in both interpreters."""

    def __init__(self, seed):
        self.s = (seed & 0xFFFFFFFF) or 1

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def below(self, n):
        return self.next() % n

    def bytes(self, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = self.next() & 0xFF
        return bytes(out)

    def choice(self, seq):
        return seq[self.below(len(seq))]


def _header(kind):
    return (frames.VERSION << 5) | kind


def _valid_messages():
    return [
        frames.Press(7, frames.GESTURE_TAP, 3, 240, 0, 80),
        frames.Press(65535, frames.GESTURE_SQUEEZE, 200, 1500, 60, 5),
        frames.AuthOk(frames.FLAG_PAIRED, 90, 2),
        frames.Felt(4242),
        frames.Status(50, 0, 1, 3),
        frames.Play(1, 1, 255, 2, 99),
        frames.Ack(12),
        frames.SetTime(800000000, -300),
        frames.SetConfig(frames.CONFIG_LED, 1),
        frames.Identify(3),
        frames.Unpair(),
    ]


class Fuzzer:
    def __init__(self, seed):
        self.rng = Rng(seed)
        self.band = frames.Session(KEY, BAND_NONCE, PHONE_NONCE, frames.BAND)
        self.phone = frames.Session(KEY, BAND_NONCE, PHONE_NONCE, frames.PHONE)
        self.key_mac = Hmac(KEY)
        self.valid = []
        for msg in _valid_messages():
            sender = self.band if msg.KIND in _BAND_KINDS else self.phone
            self.valid.append(sender.seal(msg))
        self.valid.append(frames.encode_state(KEY, BAND_NONCE, frames.FLAG_PAIRED, 80, 3))
        self.valid.append(frames.encode_auth(KEY, BAND_NONCE, PHONE_NONCE))
        pub = bytes(range(40, 72))
        self.valid.append(pairing.encode_pub(frames.PAIR_PUB, 0, pub))
        self.valid.append(pairing.encode_pub(frames.BAND_PUB, 1, pub))
        self.valid.append(pairing.encode_confirm(KEY, BAND_NONCE, PHONE_NONCE))
        self.valid_adv = [
            adv.encode_advertising(0, bytes(adv.TOKEN_LEN)),
            adv.encode_advertising(frames.FLAG_PAIRED | frames.FLAG_PAIRING_OPEN, b"\x9bJ\xa9\x170"),
            bytes((11, adv.AD_NAME_COMPLETE)) + b"Mia's band",  # no band sends a name; others do
        ]
        self.counts = {}

    # ------------------------------------------------------------------------------ inputs

    def mutate(self, data):
        rng = self.rng
        buf = bytearray(data)
        for _ in range(1 + rng.below(3)):
            op = rng.below(5)
            if op == 0 and buf:
                i = rng.below(len(buf))
                buf[i] ^= 1 << rng.below(8)
            elif op == 1 and buf:
                buf[rng.below(len(buf))] = rng.next() & 0xFF
            elif op == 2 and buf:
                buf = buf[: rng.below(len(buf))]
            elif op == 3:
                buf.extend(rng.bytes(1 + rng.below(3)))
            elif buf:
                buf[0] = _header(rng.choice(_ALL_KINDS)) if rng.below(2) else rng.next() & 0xFF
        return bytes(buf)

    def authentic(self, kind, tx_mac):
        """A session frame of `kind` with random fields and counter but a correct MAC."""
        length = frames.frame_length(_header(kind))
        body = bytes((_header(kind),)) + self.rng.bytes(length - 1 - frames.MAC_LEN)
        return body + tx_mac.digest(body)[: frames.MAC_LEN]

    def frame(self):
        rng = self.rng
        mode = rng.below(4)
        if mode == 0:
            return rng.bytes(rng.below(25))
        if mode == 1:
            head = _header(rng.choice(_ALL_KINDS))
            return bytes((head,)) + rng.bytes(frames.frame_length(head) - 2 + rng.below(3))
        if mode == 2:
            return self.mutate(rng.choice(self.valid))
        kind = rng.choice(_SESSION_KINDS)
        sender = self.band if kind in _BAND_KINDS else self.phone
        return self.authentic(kind, sender._tx)

    def state_frame(self):
        if self.rng.below(2):
            return self.frame()
        body = bytes((_header(frames.STATE),)) + self.rng.bytes(frames.STATE_LEN - 1 - frames.MAC_LEN)
        return body + self.key_mac.digest(body)[: frames.MAC_LEN]

    def confirm_frame(self):
        if self.rng.below(2):
            return self.frame()
        return pairing.encode_confirm(KEY, BAND_NONCE, self.rng.bytes(frames.NONCE_LEN))

    def pub_frame(self, kind):
        mode = self.rng.below(3)
        if mode == 0:
            return self.frame()
        if mode == 1:
            return bytes((_header(kind), self.rng.below(3))) + self.rng.bytes(16 + self.rng.below(2))
        return pairing.encode_pub(kind, self.rng.below(2), self.rng.bytes(frames.PUB_LEN))

    def auth_frame(self):
        if self.rng.below(2):
            return self.frame()
        return frames.encode_auth(KEY, BAND_NONCE, self.rng.bytes(frames.NONCE_LEN))

    def adv_payload(self):
        rng = self.rng
        mode = rng.below(3)
        if mode == 0:
            return rng.bytes(rng.below(34))
        if mode == 1:
            return self.mutate(rng.choice(self.valid_adv))
        out = bytearray()
        while len(out) < 31 and rng.below(4):
            value = rng.bytes(rng.below(18))
            if rng.below(3) == 0:
                value = b"\xff\xff" + bytes((rng.next() & 0xFF,))
            elif rng.below(3) == 0:
                value = adv.uuid128_le(HUG_SERVICE_UUID)
            length = len(value) + 1 if rng.below(6) else rng.below(40)
            out.append(length & 0xFF)
            out.append(rng.choice(_AD_TYPES))
            out.extend(value)
        return bytes(out)

    # ------------------------------------------------------------------------------ targets

    def _try(self, name, fn, data):
        accepted, rejected = self.counts.get(name, (0, 0))
        try:
            result = fn(data)
        except ProtocolError:
            self.counts[name] = (accepted, rejected + 1)
            return None, False
        except Exception as exc:  # noqa: BLE001 - the finding: report the target and the input
            raise AssertionError(
                "%s raised %s(%s) on %s" % (name, type(exc).__name__, exc, hexlify(bytes(data)).decode())
            )
        self.counts[name] = (accepted + 1, rejected)
        return result, True

    def session_open(self, role, data):
        me, peer = (self.band, self.phone) if role == frames.BAND else (self.phone, self.band)
        me.rx_counter = self.rng.below(3)
        before = me.rx_counter
        name = "Session.open[band]" if role == frames.BAND else "Session.open[phone]"
        msg, ok = self._try(name, me.open, data)
        if not ok:
            assert me.rx_counter == before, "a rejected frame moved the counter"
            return
        counter = struct.unpack_from("<I", data, 1)[0]
        assert me.rx_counter == counter, "accepted frame did not advance the counter"
        peer.tx_counter = counter - 1
        assert peer.seal(msg) == bytes(data), "accepted frame does not re-encode to itself"

    def one(self):
        rng = self.rng
        t = rng.below(12)
        if t <= 1:
            self.session_open(frames.BAND if t == 0 else frames.PHONE, self.frame())
        elif t == 2:
            data = self.frame()
            kind, ok = self._try("frame_kind", frames.frame_kind, data)
            if ok:
                assert len(data) == frames.frame_length(data[0]) and kind == data[0] & 0x1F
        elif t == 3:
            st, ok = self._try("decode_state[key]", lambda d: frames.decode_state(d, KEY), self.state_frame())
            if ok:
                assert 0 <= st.battery <= 100 and len(st.nonce) == frames.NONCE_LEN
        elif t == 4:
            data = self.state_frame()
            st, ok = self._try("decode_state[none]", lambda d: frames.decode_state(d, None), data)
            if ok:
                assert 0 <= st.battery <= 100 and len(st.nonce) == frames.NONCE_LEN
        elif t == 5:
            data = self.auth_frame()
            nonce, ok = self._try("decode_auth", lambda d: frames.decode_auth(d, KEY, BAND_NONCE), data)
            if ok:
                assert frames.encode_auth(KEY, BAND_NONCE, nonce) == data
        elif t == 6:
            data = self.confirm_frame()
            check = lambda d: pairing.check_confirm(d, KEY, BAND_NONCE)  # noqa: E731
            _, ok = self._try("pairing.check_confirm", check, data)
            if ok:
                assert pairing.encode_confirm(KEY, BAND_NONCE, pairing.confirm_nonce(data)) == data
        elif t == 11:
            kind = rng.choice((frames.PAIR_PUB, frames.BAND_PUB))
            data = self.pub_frame(kind)
            got, ok = self._try("pairing.decode_pub", lambda d: pairing.decode_pub(d, kind), data)
            if ok:
                half, part = got
                assert pairing.encode_pub(kind, half, part + part) == data
                collected = pairing.PubHalves()
                assert not collected.add(half, part) and collected.add(1 - half, part)
        elif t == 7:
            head = rng.next() & 0xFF
            length, ok = self._try("frame_length", lambda h: frames.frame_length(h[0]), bytes((head,)))
            if ok:
                assert 9 <= length <= frames.MAX_FRAME
        elif t == 8:
            data = self.adv_payload()
            found, ok = self._try("adv.fields", adv.fields, data)
            if ok:
                assert sum(2 + len(v) for _, v in found) <= len(data)
        elif t == 9:
            data = self.adv_payload()
            state, ok = self._try("adv.hug_state", adv.hug_state, data)
            assert state is None or -1 <= state <= 0xFF
            if ok:  # the same parse: the token is there exactly when the state is
                token = adv.hug_token(data)
                assert (token is None) == (state == -1) and (token is None or len(token) == adv.TOKEN_LEN)
        else:
            name, _ = self._try("adv.local_name", adv.local_name, self.adv_payload())
            assert name is None or isinstance(name, str)

    def run(self, n):
        for _ in range(n):
            self.one()
        return self.counts


def total(counts):
    return sum(a + r for a, r in counts.values())


def report(counts):
    lines = []
    for name in sorted(counts):
        a, r = counts[name]
        lines.append("%-22s %7d inputs  %6d accepted  %7d rejected" % (name, a + r, a, r))
    lines.append("total %d inputs" % total(counts))
    return "\n".join(lines)
