"""BLE frames between a band and its phone. Every frame fits 20 bytes (the default ATT MTU).

Layout: header (version << 5 | kind), then for session frames a u32 counter, the fields
encrypted, and a 4-byte truncated HMAC-SHA256 over all of that (encrypt-then-MAC; the same
length as BLE's own link-layer MIC), all little-endian. Version 2; version 1 (fields in
clear, the band key written in clear at pairing) is refused.

Connection handshake (the band key is 16 bytes, agreed once inside the pairing window by
X25519, see hugproto.pairing):
  1. phone reads State   nonce_b (8 random bytes, new per connection), flags, battery
                         MAC under the band key (all zeros while unpaired)
  2. phone writes Auth   nonce_p, MAC under the band key over both nonces
  3. band notifies AuthOk  the first frame of the session: the band holds the key too
Each direction then has its own keys HMAC(band key, label | nonce_b | nonce_p), one for the
keystream and one for the MAC, so a frame from an old connection or the other direction
never verifies, and counters only rise. The keystream of a frame is HMAC(enc key, header |
counter): a counter is used once per key, so no keystream is ever used twice.
"""

import struct

from hugproto.compat import const
from hugproto.errors import Incomplete, Malformed, Replayed, Unauthenticated
from hugproto.mac import Hmac, equal
from hugproto.patterns import MAX_REPEAT, NUM_SIGNATURES, is_pattern

VERSION = const(2)
MAX_FRAME = const(20)
MAC_LEN = const(4)
NONCE_LEN = const(8)
KEY_LEN = const(16)
PUB_LEN = const(32)  # an X25519 public key, sent in two halves
_HEAD_LEN = const(5)  # header byte + u32 counter
_MAX_COUNTER = const(0xFFFFFFFF)

# Band -> phone
STATE = const(0x01)
AUTH_OK = const(0x02)
PRESS = const(0x03)
FELT = const(0x04)
STATUS = const(0x05)
BAND_PUB = const(0x06)  # pairing: half of the band's X25519 public key
# Phone -> band
AUTH = const(0x10)
PAIR_PUB = const(0x11)  # pairing: half of the phone's X25519 public key
PLAY = const(0x12)
ACK = const(0x13)
SET_TIME = const(0x14)
SET_CONFIG = const(0x15)
IDENTIFY = const(0x16)
UNPAIR = const(0x17)
PAIR_CONFIRM = const(0x18)  # pairing: nonce_p + tag under the agreed key; opens the session

# State flags (also the advertising state byte)
FLAG_PAIRED = const(0x01)
FLAG_PAIRING_OPEN = const(0x02)
FLAG_LOW_BATTERY = const(0x04)
FLAG_CHARGING = const(0x08)
FLAG_JUST_PAIRED = const(0x10)  # a pairing completed in the last minute (the window is closed)
_ALL_FLAGS = const(0x1F)

GESTURE_TAP = const(1)
GESTURE_SQUEEZE = const(2)
MAX_TAPS = const(5)

CONFIG_MOTOR_MAX = const(1)
CONFIG_LED = const(2)
CONFIG_LOW_BATTERY_PCT = const(3)
CONFIG_IDLE_SLEEP_MIN = const(4)
# key -> (min, max)
CONFIG_RANGES = {
    CONFIG_MOTOR_MAX: (1, 255),
    CONFIG_LED: (0, 1),
    CONFIG_LOW_BATTERY_PCT: (5, 50),
    CONFIG_IDLE_SLEEP_MIN: (0, 1440),
}

UNPAIRED_KEY = bytes(KEY_LEN)

BAND = const(0)
PHONE = const(1)

_HEADER_BASE = const(VERSION << 5)
_STATE_FMT = "<8sBBB"
_AUTH_LABEL = b"hug auth"
_B2P_LABEL = b"hug b2p"
_P2B_LABEL = b"hug p2b"
_CODE_LABEL = b"hug pair code"
_ENC = b" enc"
_MAC = b" mac"


def _header(kind: int) -> int:
    return _HEADER_BASE | kind


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise Malformed("%s must be %d..%d, got %d" % (name, low, high, value))


_WIDTHS = {"B": (0, 0xFF), "H": (0, 0xFFFF), "h": (-0x8000, 0x7FFF), "I": (0, 0xFFFFFFFF)}


class Message:
    """A session message. Subclasses set KIND and FMT (the fields' struct format)."""

    KIND = 0
    FMT = "<"

    def fields(self) -> tuple[int, ...]:
        return ()

    def check(self) -> None:
        """Raise Malformed when a field is out of its range (struct would silently wrap it)."""
        values = self.fields()
        for i in range(len(values)):
            low, high = _WIDTHS[self.FMT[1 + i]]
            if not low <= values[i] <= high:
                raise Malformed(
                    "field %d of kind 0x%02x must be %d..%d, got %d" % (i, self.KIND, low, high, values[i])
                )
        self.check_values()

    def check_values(self) -> None:
        pass


class Press(Message):
    """A gesture on the band's heart. value = tap count (tap) or intensity (squeeze)."""

    KIND = PRESS
    FMT = "<HBBHHB"

    def __init__(
        self, seq: int, gesture: int, value: int, duration_ms: int = 0, age_s: int = 0, battery: int = 0
    ):
        self.seq = seq
        self.gesture = gesture
        self.value = value
        self.duration_ms = duration_ms
        self.age_s = age_s
        self.battery = battery

    def fields(self) -> tuple[int, ...]:
        return (self.seq, self.gesture, self.value, self.duration_ms, self.age_s, self.battery)

    def check_values(self) -> None:
        if self.gesture == GESTURE_TAP:
            _check_range("tap count", self.value, 1, MAX_TAPS)
        elif self.gesture == GESTURE_SQUEEZE:
            _check_range("squeeze intensity", self.value, 1, 255)
        else:
            raise Malformed("unknown gesture %d" % self.gesture)
        _check_range("battery", self.battery, 0, 100)


class AuthOk(Message):
    """The band's answer to Auth: proves it holds the key; carries its state."""

    KIND = AUTH_OK
    FMT = "<BBB"

    def __init__(self, flags: int, battery: int, pending: int):
        self.flags = flags
        self.battery = battery
        self.pending = pending

    def fields(self) -> tuple[int, ...]:
        return (self.flags, self.battery, self.pending)

    def check_values(self) -> None:
        _check_range("flags", self.flags, 0, _ALL_FLAGS)
        _check_range("battery", self.battery, 0, 100)


class Felt(Message):
    """The band played the hug whose Play carried this token."""

    KIND = FELT
    FMT = "<H"

    def __init__(self, token: int):
        self.token = token

    def fields(self) -> tuple[int, ...]:
        return (self.token,)


class Status(Message):
    """Battery and the band's counters of dropped presses and rejected frames."""

    KIND = STATUS
    FMT = "<BBHH"

    def __init__(self, battery: int, flags: int, dropped: int, rejected: int):
        self.battery = battery
        self.flags = flags
        self.dropped = dropped
        self.rejected = rejected

    def fields(self) -> tuple[int, ...]:
        return (self.battery, self.flags, self.dropped, self.rejected)

    def check_values(self) -> None:
        _check_range("battery", self.battery, 0, 100)
        _check_range("flags", self.flags, 0, _ALL_FLAGS)


class Play(Message):
    """Play a haptic pattern; the band answers Felt(token) once it has played."""

    KIND = PLAY
    FMT = "<BBBBH"

    def __init__(self, pattern: int, signature: int, intensity: int, repeat: int, token: int):
        self.pattern = pattern
        self.signature = signature
        self.intensity = intensity
        self.repeat = repeat
        self.token = token

    def fields(self) -> tuple[int, ...]:
        return (self.pattern, self.signature, self.intensity, self.repeat, self.token)

    def check_values(self) -> None:
        if not is_pattern(self.pattern):
            raise Malformed("unknown haptic pattern %d" % self.pattern)
        _check_range("signature", self.signature, 0, NUM_SIGNATURES - 1)
        _check_range("intensity", self.intensity, 1, 255)
        _check_range("repeat", self.repeat, 1, MAX_REPEAT)


class Ack(Message):
    """Every press up to and including seq is stored on the phone."""

    KIND = ACK
    FMT = "<H"

    def __init__(self, seq: int):
        self.seq = seq

    def fields(self) -> tuple[int, ...]:
        return (self.seq,)


class SetTime(Message):
    """Wall clock: UTC seconds since 2000-01-01 (MicroPython's epoch) and the local offset."""

    KIND = SET_TIME
    FMT = "<Ih"

    def __init__(self, epoch_s: int, tz_minutes: int):
        self.epoch_s = epoch_s
        self.tz_minutes = tz_minutes

    def fields(self) -> tuple[int, ...]:
        return (self.epoch_s, self.tz_minutes)

    def check_values(self) -> None:
        _check_range("timezone offset", self.tz_minutes, -720, 840)


class SetConfig(Message):
    """One band setting; see CONFIG_RANGES."""

    KIND = SET_CONFIG
    FMT = "<BH"

    def __init__(self, key: int, value: int):
        self.key = key
        self.value = value

    def fields(self) -> tuple[int, ...]:
        return (self.key, self.value)

    def check_values(self) -> None:
        limits = CONFIG_RANGES.get(self.key)
        if limits is None:
            raise Malformed("unknown config key %d" % self.key)
        _check_range("config value", self.value, limits[0], limits[1])


class Identify(Message):
    """Find my band: buzz and blink for a few seconds."""

    KIND = IDENTIFY
    FMT = "<B"

    def __init__(self, seconds: int):
        self.seconds = seconds

    def fields(self) -> tuple[int, ...]:
        return (self.seconds,)

    def check_values(self) -> None:
        _check_range("identify seconds", self.seconds, 1, 60)


class Unpair(Message):
    """Forget the band key (the phone forgot this band)."""

    KIND = UNPAIR
    FMT = "<"


class State:
    """The state characteristic: the connection's nonce and the band's flags."""

    def __init__(self, nonce: bytes, flags: int, battery: int, firmware: int):
        self.nonce = nonce
        self.flags = flags
        self.battery = battery
        self.firmware = firmware


def _from_fields(kind: int, f: tuple[int, ...]) -> Message:
    if kind == PRESS:
        return Press(f[0], f[1], f[2], f[3], f[4], f[5])
    if kind == AUTH_OK:
        return AuthOk(f[0], f[1], f[2])
    if kind == FELT:
        return Felt(f[0])
    if kind == STATUS:
        return Status(f[0], f[1], f[2], f[3])
    if kind == PLAY:
        return Play(f[0], f[1], f[2], f[3], f[4])
    if kind == ACK:
        return Ack(f[0])
    if kind == SET_TIME:
        return SetTime(f[0], f[1])
    if kind == SET_CONFIG:
        return SetConfig(f[0], f[1])
    if kind == IDENTIFY:
        return Identify(f[0])
    return Unpair()


# kind -> (field format, whole frame length)
_SESSION_KINDS: dict[int, tuple[str, int]] = {}
for _cls in (Press, AuthOk, Felt, Status, Play, Ack, SetTime, SetConfig, Identify, Unpair):
    _SESSION_KINDS[_cls.KIND] = (_cls.FMT, _HEAD_LEN + struct.calcsize(_cls.FMT) + MAC_LEN)
_BAND_SENDS = (AUTH_OK, PRESS, FELT, STATUS)
STATE_LEN = 1 + struct.calcsize(_STATE_FMT) + MAC_LEN
AUTH_LEN = 1 + NONCE_LEN + MAC_LEN
PUB_FRAME_LEN = 2 + PUB_LEN // 2  # header, half (0 or 1), 16 bytes of the key
_FIXED_LENGTHS = {
    STATE: STATE_LEN,
    AUTH: AUTH_LEN,
    BAND_PUB: PUB_FRAME_LEN,
    PAIR_PUB: PUB_FRAME_LEN,
    PAIR_CONFIRM: AUTH_LEN,
}


def frame_length(header: int) -> int:
    """The whole length of a frame from its first byte, to split writes that arrived together."""
    version = header >> 5
    if version != VERSION:
        raise Malformed("protocol version %d is not supported (this side speaks %d)" % (version, VERSION))
    kind = header & 0x1F
    expected = _FIXED_LENGTHS.get(kind)
    if expected is None:
        entry = _SESSION_KINDS.get(kind)
        if entry is None:
            raise Malformed("unknown frame kind 0x%02x" % kind)
        expected = entry[1]
    return expected


def frame_kind(data: bytes) -> int:
    """Check the header and length of any frame and return its kind."""
    if not data:
        raise Incomplete("empty frame")
    if len(data) > MAX_FRAME:
        raise Malformed("frame is %d bytes; at most %d" % (len(data), MAX_FRAME))
    expected = frame_length(data[0])
    kind = data[0] & 0x1F
    if len(data) < expected:
        raise Incomplete("frame kind 0x%02x needs %d bytes, got %d" % (kind, expected, len(data)))
    if len(data) > expected:
        raise Malformed("frame kind 0x%02x is %d bytes, expected %d" % (kind, len(data), expected))
    return kind


def _verify(mac: Hmac, data: bytes, body_len: int, tag_len: int, *extra: bytes) -> None:
    tag = mac.digest(data[:body_len], *extra)[:tag_len]
    if not equal(tag, data[body_len : body_len + tag_len]):
        raise Unauthenticated("frame kind 0x%02x failed authentication" % (data[0] & 0x1F))


def encode_state(key: bytes, nonce: bytes, flags: int, battery: int, firmware: int) -> bytes:
    if len(nonce) != NONCE_LEN:
        raise Malformed("nonce must be %d bytes" % NONCE_LEN)
    _check_range("flags", flags, 0, _ALL_FLAGS)
    _check_range("battery", battery, 0, 100)
    _check_range("firmware", firmware, 0, 255)
    body = bytes((_header(STATE),)) + struct.pack(_STATE_FMT, nonce, flags, battery, firmware)
    return body + Hmac(key).digest(body)[:MAC_LEN]


def decode_state(data: bytes, key: bytes | None) -> State:
    """Decode the state characteristic; verify it when the reader holds the band key.

    A phone pairing a band does not hold its key yet and reads the nonce unverified;
    everything after that is bound to the nonce and authenticated.
    """
    if frame_kind(data) != STATE:
        raise Malformed("expected a State frame, got kind 0x%02x" % (data[0] & 0x1F))
    if key is not None:
        _verify(Hmac(key), data, STATE_LEN - MAC_LEN, MAC_LEN)
    nonce, flags, battery, firmware = struct.unpack_from(_STATE_FMT, data, 1)
    _check_range("flags", flags, 0, _ALL_FLAGS)
    _check_range("battery", battery, 0, 100)
    return State(bytes(nonce), flags, battery, firmware)


def _auth_tag(key: bytes, header: bytes, band_nonce: bytes, phone_nonce: bytes) -> bytes:
    return Hmac(key).digest(_AUTH_LABEL, header, phone_nonce, band_nonce)[:MAC_LEN]


def encode_auth(key: bytes, band_nonce: bytes, phone_nonce: bytes) -> bytes:
    if len(band_nonce) != NONCE_LEN or len(phone_nonce) != NONCE_LEN:
        raise Malformed("nonces must be %d bytes" % NONCE_LEN)
    header = bytes((_header(AUTH),))
    return header + phone_nonce + _auth_tag(key, header, band_nonce, phone_nonce)


def decode_auth(data: bytes, key: bytes, band_nonce: bytes) -> bytes:
    """Verify an Auth frame against the band key and this connection's nonce; return nonce_p."""
    if frame_kind(data) != AUTH:
        raise Malformed("expected an Auth frame, got kind 0x%02x" % (data[0] & 0x1F))
    phone_nonce = bytes(data[1 : 1 + NONCE_LEN])
    tag = _auth_tag(key, bytes(data[:1]), band_nonce, phone_nonce)
    if not equal(tag, bytes(data[1 + NONCE_LEN :])):
        raise Unauthenticated("Auth frame failed authentication")
    return phone_nonce


class Session:
    """One authenticated connection, seen from one side (BAND or PHONE).

    seal() numbers, encrypts and tags outgoing messages; open() checks incoming frames,
    accepts each counter once, in rising order, and decrypts. A rejected frame changes nothing.
    """

    def __init__(self, key: bytes, band_nonce: bytes, phone_nonce: bytes, role: int):
        root = Hmac(key)
        tx = _B2P_LABEL if role == BAND else _P2B_LABEL
        rx = _P2B_LABEL if role == BAND else _B2P_LABEL
        self.role = role
        self._tx_enc = Hmac(root.digest(tx, _ENC, band_nonce, phone_nonce))
        self._tx = Hmac(root.digest(tx, _MAC, band_nonce, phone_nonce))
        self._rx_enc = Hmac(root.digest(rx, _ENC, band_nonce, phone_nonce))
        self._rx = Hmac(root.digest(rx, _MAC, band_nonce, phone_nonce))
        self.tx_counter = 0
        self.rx_counter = 0
        self._buf = bytearray(MAX_FRAME)

    def seal(self, msg: Message) -> bytes:
        kind = msg.KIND
        if (kind in _BAND_SENDS) != (self.role == BAND):
            raise Malformed("this side does not send frame kind 0x%02x" % kind)
        msg.check()
        if self.tx_counter >= _MAX_COUNTER:
            raise Malformed("session counter exhausted; reconnect")
        self.tx_counter += 1
        fmt, length = _SESSION_KINDS[kind]
        buf = self._buf
        buf[0] = _header(kind)
        struct.pack_into("<I", buf, 1, self.tx_counter)
        struct.pack_into(fmt, buf, _HEAD_LEN, *msg.fields())
        body = length - MAC_LEN
        _xor(buf, body, self._tx_enc.digest(memoryview(buf)[:_HEAD_LEN]))
        buf[body:length] = self._tx.digest(memoryview(buf)[:body])[:MAC_LEN]
        return bytes(buf[:length])

    def open(self, data: bytes) -> Message:
        kind = frame_kind(data)
        entry = _SESSION_KINDS.get(kind)
        if entry is None:
            raise Malformed("frame kind 0x%02x is not a session frame" % kind)
        if (kind in _BAND_SENDS) == (self.role == BAND):
            raise Malformed("frame kind 0x%02x travels the other way" % kind)
        fmt, length = entry
        body = length - MAC_LEN
        _verify(self._rx, data, body, MAC_LEN)
        counter = struct.unpack_from("<I", data, 1)[0]
        if counter <= self.rx_counter:
            raise Replayed("counter %d already seen (last %d)" % (counter, self.rx_counter))
        plain = bytearray(data[:body])
        _xor(plain, body, self._rx_enc.digest(memoryview(plain)[:_HEAD_LEN]))
        msg = _from_fields(kind, struct.unpack_from(fmt, plain, _HEAD_LEN))
        msg.check()
        self.rx_counter = counter
        return msg


def pairing_code(key: bytes) -> int:
    """How many pulses (2..5) follow the rising wave when the band pairs under ``key`` and when it is
    asked to identify itself; the phone shows the same count from its own key."""
    return 2 + Hmac(key).digest(_CODE_LABEL)[0] % 4


def _xor(buf: bytearray, end: int, stream: bytes) -> None:
    """Encrypt or decrypt the fields (after header and counter, up to ``end``) in place."""
    for i in range(_HEAD_LEN, end):
        buf[i] ^= stream[i - _HEAD_LEN]


def band_session(key: bytes, band_nonce: bytes, auth_frame: bytes) -> Session:
    """Band side: verify the phone's Auth frame and open the session."""
    return Session(key, band_nonce, decode_auth(auth_frame, key, band_nonce), BAND)


def phone_session(key: bytes, band_nonce: bytes, phone_nonce: bytes) -> tuple[bytes, Session]:
    """Phone side: the Auth frame to write, and the session it opens."""
    return encode_auth(key, band_nonce, phone_nonce), Session(key, band_nonce, phone_nonce, PHONE)
