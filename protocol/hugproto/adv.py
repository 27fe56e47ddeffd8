"""The advertising payload (at most 31 bytes): what any scanner in range sees of a band.

Flags, the Hug service UUID and manufacturer data (company id 0xFFFF, reserved for development)
holding one state byte and a 5-byte identity token. No name, no scan response. The state byte is
the public state (paired, pairing window open: bits 0-1) and a 6-bit *roll* (bits 2-7, in clear).
The band advertises from a random address that it replaces every few minutes (``hugband.logic``);
the token is ``HMAC(identity key, address || roll || waiting)`` truncated, where *waiting* is 1 when
a press waits on the band to be sent. Only holders of the identity key (the band's owners, its
enrolled hub) can tell which band it is, and whether a press waits: they try both values
(``recognise``). The band steps the roll on a fixed beat, so the token changes whether or not a
press waits and a scanner learns nothing from it. The identity key is derived from the band key
and cannot authenticate.
"""

from hugproto.compat import const
from hugproto.errors import Incomplete, Malformed
from hugproto.gatt import HUG_SERVICE_UUID
from hugproto.mac import Hmac, equal

MAX_ADV = const(31)
TOKEN_LEN = const(5)
ADDR_LEN = const(6)
ID_KEY_LEN = const(16)

AD_FLAGS = const(0x01)
AD_UUID128_COMPLETE = const(0x07)
AD_NAME_SHORT = const(0x08)
AD_NAME_COMPLETE = const(0x09)
AD_MANUFACTURER = const(0xFF)

COMPANY_ID = const(0xFFFF)
_GENERAL_DISC_NO_BREDR = const(0x06)
STATE_MASK = const(0x03)  # frames.FLAG_PAIRED | FLAG_PAIRING_OPEN: nothing that changes more often
ROLL_SHIFT = const(2)  # the roll sits above the state bits
ROLLS = const(64)  # roll values: a band takes a new address before one comes round again
_MANUFACTURER_LEN = const(3 + TOKEN_LEN)
_ID_LABEL = b"hug adv id"


def uuid128_le(uuid: str) -> bytes:
    """A 128-bit UUID string as the little-endian bytes used on air."""
    raw = bytes.fromhex(uuid.replace("-", ""))
    if len(raw) != 16:
        raise Malformed("a 128-bit UUID has 16 bytes, got %d" % len(raw))
    return bytes(reversed(raw))


def _field(out: bytearray, ad_type: int, value: bytes) -> None:
    out.append(len(value) + 1)
    out.append(ad_type)
    out.extend(value)


def identity_key(band_key: bytes) -> bytes:
    """The key that recognises a band's adverts, derived from its band key (owners and hubs)."""
    return Hmac(band_key).digest(_ID_LABEL)[:ID_KEY_LEN]


def token(ident: Hmac, address: bytes, roll: int = 0, waiting: int = 0) -> bytes:
    """The identity token for one advertising address (6 bytes, most significant first), roll and
    waiting bit."""
    if len(address) != ADDR_LEN:
        raise Malformed("a BLE address has 6 bytes, got %d" % len(address))
    if not 0 <= roll < ROLLS:
        raise Malformed("a roll is 0..%d, got %d" % (ROLLS - 1, roll))
    return ident.digest(address, bytes((roll, 1 if waiting else 0)))[:TOKEN_LEN]


def encode_advertising(state_flags: int, tok: bytes, roll: int = 0) -> bytes:
    """Flags + Hug service UUID + manufacturer data: state (paired, pairing open), roll and token
    (31 bytes)."""
    if not 0 <= state_flags <= 0xFF:
        raise Malformed("state flags must fit one byte")
    if len(tok) != TOKEN_LEN:
        raise Malformed("an identity token has %d bytes, got %d" % (TOKEN_LEN, len(tok)))
    if not 0 <= roll < ROLLS:
        raise Malformed("a roll is 0..%d, got %d" % (ROLLS - 1, roll))
    state = (state_flags & STATE_MASK) | (roll << ROLL_SHIFT)
    out = bytearray()
    _field(out, AD_FLAGS, bytes((_GENERAL_DISC_NO_BREDR,)))
    _field(out, AD_UUID128_COMPLETE, uuid128_le(HUG_SERVICE_UUID))
    _field(out, AD_MANUFACTURER, bytes((COMPANY_ID & 0xFF, COMPANY_ID >> 8, state)) + tok)
    if len(out) > MAX_ADV:  # pragma: no cover - fixed layout, checked by the vectors
        raise Malformed("advertising payload is %d bytes; at most %d" % (len(out), MAX_ADV))
    return bytes(out)


def fields(payload: bytes) -> list[tuple[int, bytes]]:
    """Split a payload into (AD type, value) pairs; zero-length padding ends it."""
    if len(payload) > MAX_ADV:
        raise Malformed("advertising payload is %d bytes; at most %d" % (len(payload), MAX_ADV))
    found: list[tuple[int, bytes]] = []
    i = 0
    while i < len(payload):
        length = payload[i]
        if length == 0:
            break
        if i + 1 + length > len(payload):
            raise Incomplete("AD structure at %d needs %d bytes, %d left" % (i, length, len(payload) - i - 1))
        found.append((payload[i + 1], bytes(payload[i + 2 : i + 1 + length])))
        i += 1 + length
    return found


def hug_data(payload: bytes) -> bytes | None:
    """The Hug manufacturer data (state byte + token) of a Hug band's advert, else None."""
    has_service = False
    found = None
    want = uuid128_le(HUG_SERVICE_UUID)
    for ad_type, value in fields(payload):
        if ad_type == AD_UUID128_COMPLETE:
            for j in range(0, len(value) - 15, 16):
                if value[j : j + 16] == want:
                    has_service = True
        elif ad_type == AD_MANUFACTURER and len(value) == _MANUFACTURER_LEN:
            if value[0] | (value[1] << 8) == COMPANY_ID:
                found = value[2:]
    return found if has_service else None


def hug_state(payload: bytes) -> int:
    """The band state flags from an advertisement, or -1 when it is not a Hug band's."""
    m = hug_data(payload)
    return -1 if m is None else m[0] & STATE_MASK


def hug_roll(payload: bytes) -> int:
    """The roll of a Hug band's advertisement, or -1 when it is not one."""
    m = hug_data(payload)
    return -1 if m is None else m[0] >> ROLL_SHIFT


def recognise(ident: Hmac, address: bytes, data: bytes) -> int:
    """-1 when ``data`` (a Hug advert's manufacturer data: state byte + token, as ``hug_data``
    gives) is not from the band of ``ident`` at ``address``; else its waiting bit (1: a press waits)."""
    if len(data) != 1 + TOKEN_LEN or len(address) != ADDR_LEN:
        return -1
    roll, tok = data[0] >> ROLL_SHIFT, data[1:]
    for waiting in (0, 1):
        if equal(token(ident, address, roll, waiting), tok):
            return waiting
    return -1


def hug_token(payload: bytes) -> bytes | None:
    """The identity token of a Hug band's advertisement, or None when it is not one."""
    m = hug_data(payload)
    return None if m is None else m[1:]


def local_name(payload: bytes) -> str | None:
    """The (complete or shortened) local name in a payload, if any (a band sends none)."""
    for ad_type, value in fields(payload):
        if ad_type in (AD_NAME_COMPLETE, AD_NAME_SHORT):
            try:
                return value.decode()
            except UnicodeError:
                raise Malformed("local name is not UTF-8")
    return None
