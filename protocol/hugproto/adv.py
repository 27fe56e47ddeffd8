"""Advertising and scan-response payloads (each at most 31 bytes).

The advertisement carries the flags, the Hug service UUID and one byte of band state in
manufacturer data (company id 0xFFFF, reserved for development), so a phone can show
"pairing window open" before connecting. The name goes in the scan response.
"""

from hugproto.compat import const
from hugproto.errors import Incomplete, Malformed
from hugproto.gatt import HUG_SERVICE_UUID

MAX_ADV = const(31)
MAX_NAME = const(29)

AD_FLAGS = const(0x01)
AD_UUID128_COMPLETE = const(0x07)
AD_NAME_SHORT = const(0x08)
AD_NAME_COMPLETE = const(0x09)
AD_MANUFACTURER = const(0xFF)

COMPANY_ID = const(0xFFFF)
_GENERAL_DISC_NO_BREDR = const(0x06)


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


def encode_advertising(state_flags: int) -> bytes:
    """Flags + Hug service UUID + manufacturer data with the band's state flags (26 bytes)."""
    if not 0 <= state_flags <= 0xFF:
        raise Malformed("state flags must fit one byte")
    out = bytearray()
    _field(out, AD_FLAGS, bytes((_GENERAL_DISC_NO_BREDR,)))
    _field(out, AD_UUID128_COMPLETE, uuid128_le(HUG_SERVICE_UUID))
    _field(out, AD_MANUFACTURER, bytes((COMPANY_ID & 0xFF, COMPANY_ID >> 8, state_flags)))
    return bytes(out)


def encode_scan_response(name: str) -> bytes:
    """The complete local name; longer than 29 bytes of UTF-8 is an error, not a silent cut."""
    raw = name.encode()
    if not raw:
        raise Malformed("a band needs a name")
    if len(raw) > MAX_NAME:
        raise Malformed("name is %d bytes; at most %d fit a scan response" % (len(raw), MAX_NAME))
    out = bytearray()
    _field(out, AD_NAME_COMPLETE, raw)
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


def hug_state(payload: bytes) -> int:
    """The band state flags from an advertisement, or -1 when it is not a Hug band's."""
    has_service = False
    state = -1
    want = uuid128_le(HUG_SERVICE_UUID)
    for ad_type, value in fields(payload):
        if ad_type == AD_UUID128_COMPLETE:
            for j in range(0, len(value) - 15, 16):
                if value[j : j + 16] == want:
                    has_service = True
        elif ad_type == AD_MANUFACTURER and len(value) == 3:
            if value[0] | (value[1] << 8) == COMPANY_ID:
                state = value[2]
    return state if has_service else -1


def local_name(payload: bytes) -> str | None:
    """The (complete or shortened) local name in a payload, if any."""
    for ad_type, value in fields(payload):
        if ad_type in (AD_NAME_COMPLETE, AD_NAME_SHORT):
            try:
                return value.decode()
            except UnicodeError:
                raise Malformed("local name is not UTF-8")
    return None
