"""Airspace wire format, shared by the server and every client.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON (one object).
Binary values (advertising data, attribute values, addresses as bytes) travel as lowercase hex.

Requests carry an integer ``id``; the answer to a request echoes it with ``ok`` true (plus result
fields) or ``ok`` false with ``error`` (a code, see ``ERROR_CODES``), ``message`` and, for GATT
errors, ``att`` (the ATT error code). Unsolicited messages carry ``ev`` (the event name) instead.
"""

import ipaddress
import json
import struct
from typing import Any

MAX_FRAME = 1 << 20  # 1 MiB; a larger frame is a protocol error and closes the session
_LEN = struct.Struct(">I")

DEFAULT_RSSI = -55
VISIBLE_RSSI_FLOOR = -100  # below this (or None) a node is out of range: invisible, links drop
DEFAULT_MTU = 23

# HCI disconnect reasons, as a real stack reports them.
REASON_SUPERVISION_TIMEOUT = 0x08  # link lost (out of range, injected drop, peer vanished)
REASON_REMOTE_USER = 0x13  # the other side terminated
REASON_LOCAL_HOST = 0x16  # this side terminated

# Links one central may hold at once, as real adapters allow (many BlueZ controllers and Android
# phones manage about 7); a connect beyond it fails at once with LinkLimitError.
DEFAULT_LINK_LIMIT = 7

# ATT error codes used by the airspace.
ATT_INVALID_HANDLE = 0x01
ATT_READ_NOT_PERMITTED = 0x02
ATT_WRITE_NOT_PERMITTED = 0x03
ATT_UNLIKELY = 0x0E

ERROR_CODES = ("bad_request", "not_found", "not_connected", "timeout", "gatt", "busy", "link_limit")

BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"
CCCD_UUID = "00002902" + BASE_UUID_SUFFIX


class AirspaceError(Exception):
    """Base of every airspace error (one base error per layer)."""

    code = "bad_request"


class NotFoundError(AirspaceError):
    """No such node, connection target or attribute."""

    code = "not_found"


class NotConnectedError(AirspaceError):
    """The link is down (never up, dropped, or the peer vanished)."""

    code = "not_connected"


class AirspaceTimeoutError(AirspaceError, TimeoutError):
    """An operation did not complete in time."""

    code = "timeout"


class GattError(AirspaceError):
    """The peer answered with an ATT error (``att`` holds the code)."""

    code = "gatt"

    def __init__(self, message: str, att: int = ATT_UNLIKELY) -> None:
        super().__init__(message)
        self.att = att


class BusyError(AirspaceError):
    """The request conflicts with current state (e.g. an address already in use)."""

    code = "busy"


class LinkLimitError(AirspaceError):
    """The central already holds as many links as its adapter allows (see ``DEFAULT_LINK_LIMIT``)."""

    code = "link_limit"


_BY_CODE = {
    c.code: c
    for c in (
        AirspaceError,
        NotFoundError,
        NotConnectedError,
        AirspaceTimeoutError,
        GattError,
        BusyError,
        LinkLimitError,
    )
}


def error_from_reply(reply: dict[str, Any]) -> AirspaceError:
    cls = _BY_CODE.get(reply.get("error", "bad_request"), AirspaceError)
    message = reply.get("message", "airspace error")
    if cls is GattError:
        return GattError(message, reply.get("att", ATT_UNLIKELY))
    return cls(message)


def error_reply(req_id: Any, exc: AirspaceError) -> dict[str, Any]:
    msg = {"id": req_id, "ok": False, "error": exc.code, "message": str(exc)}
    if isinstance(exc, GattError):
        msg["att"] = exc.att
    return msg


def encode(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise ValueError("airspace frame too large: %d bytes" % len(body))
    return _LEN.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    msg: Any = json.loads(body.decode())
    if not isinstance(msg, dict):
        raise ValueError("airspace frame is not a JSON object")
    return msg  # pyright: ignore[reportUnknownVariableType]


def frame_length(header: bytes) -> int:
    (n,) = _LEN.unpack(header)
    if n > MAX_FRAME:
        raise ValueError("airspace frame too large: %d bytes" % n)
    return n


HEADER_SIZE = _LEN.size


async def read_frame(reader: Any) -> dict[str, Any] | None:
    """Read one message from an asyncio StreamReader; None at a clean end of stream."""
    import asyncio

    try:
        header = await reader.readexactly(HEADER_SIZE)
        body = await reader.readexactly(frame_length(header))
    except asyncio.IncompleteReadError:
        return None
    return decode_body(body)


def recv_frame(sock: Any) -> dict[str, Any] | None:
    """Blocking read of one message from a socket; None at end of stream."""
    header = _recv_exact(sock, HEADER_SIZE)
    if header is None:
        return None
    body = _recv_exact(sock, frame_length(header))
    if body is None:
        return None
    return decode_body(body)


def _recv_exact(sock: Any, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def hexb(data: Any) -> str:
    return bytes(data).hex()


def unhex(text: str) -> bytes:
    return bytes.fromhex(text)


def unhex_opt(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def parse_addr(addr: str) -> tuple[str, int]:
    """'127.0.0.1:PORT' -> (host, port). Only loopback hosts are accepted."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("airspace address must look like 127.0.0.1:PORT, got %r" % addr)
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError("the airspace only lives on loopback, not %r" % host)
    return host, int(port)


def normalize_address(address: str) -> str:
    """Canonical BLE address text: six upper-case hex octets joined by ':'."""
    parts = address.replace("-", ":").split(":")
    if len(parts) != 6 or any(len(p) != 2 for p in parts):
        raise ValueError("bad BLE address %r" % address)
    bytes.fromhex("".join(parts))  # raises ValueError on non-hex octets
    return ":".join(p.upper() for p in parts)


def address_bytes(address: str) -> bytes:
    return bytes.fromhex(normalize_address(address).replace(":", ""))


def uuid_str(value: Any) -> str:
    """Canonical 128-bit lower-case UUID text for a 16/32-bit int or a UUID string."""
    if isinstance(value, int):
        return "%08x%s" % (value, BASE_UUID_SUFFIX)
    text = str(value).lower()
    if len(text) in (4, 8) and all(c in "0123456789abcdef" for c in text):
        return "%08x%s" % (int(text, 16), BASE_UUID_SUFFIX)
    return text
