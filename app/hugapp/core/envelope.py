"""End-to-end sealed envelopes and the topic scheme of the phone-to-phone relay.

Wire format of an envelope (what the broker sees)::

    version (1 byte, 0x01) | nonce (12 random bytes) | ChaCha20-Poly1305 ciphertext + 16-byte tag

The AEAD key is derived from the circle's 32-byte link key (or a member's presence key). The
associated data binds the MQTT topic and the sender's member id, so an envelope moved to another topic,
or claimed by another sender, fails to open. The sender id is not sent in clear: the receiver tries the
(few) members of the circle. Plaintext::

    msg id (16 random bytes) | sent-at (float64 BE, Unix s) | JSON {"f": sender, "t": type, "p": payload}

padded with spaces to a multiple of 128 bytes so sizes do not tell a hug from an ack.

Topics (no names, no member or link ids; hex only)::

    hug/v1/in/<mailbox>/<64 hex>   inbox of one member in one circle: HMAC(link key, "inbox" | member id)
    hug/v1/pr/<64 hex>             retained, sealed presence of one companion: named by its presence key
    hug/v1/rv/<64 hex>/a|b         linking rendezvous: from scrypt of the whole link code

`mailbox` is a random per-companion id (32 hex) and its broker user name under deploy/'s ACLs, which
let a client read only hug/v1/in/<its own mailbox>/+ and never subscribe to '#'. Only the members of
its circles learn it (at linking, sealed): no topic anyone else can read contains it, so an account on
the broker cannot find a companion's inbox. Presence topics are derived from a key only the circles
know, and name no one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

VERSION = 1
NONCE_LEN = 12
TAG_LEN = 16
MSG_ID_LEN = 16
PAD_TO = 128
MAX_ENVELOPE = 4 * 1024  # larger payloads are refused on both sides, before any decoding
# (the largest legitimate envelope, a member-added with its record, is under 1 KB)
TOPIC_ROOT = "hug/v1"
_HEADER = struct.Struct(">16sd")
_AD_LABEL = b"hugbutton/v1 envelope\x00"


class RelayError(Exception):
    """Base error of the relay layer (envelopes, relay, linking, broker)."""


class EnvelopeError(RelayError):
    """An envelope was refused; `reason` is a stable code for logs and tests."""

    reason = "invalid"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class Forged(EnvelopeError):
    """Authentication failed: wrong key, wrong topic, unknown or wrong sender, or altered bytes."""

    reason = "forged"


class Replayed(EnvelopeError):
    """Authentic but already received (or too old to tell)."""

    reason = "replayed"


class Garbled(EnvelopeError):
    """Not an envelope at all: too short, too long or an unknown version."""

    reason = "garbled"


class Invalid(EnvelopeError):
    """An authentic envelope whose content is wrong (a field out of range, not finite, malformed). The
    relay acknowledges and drops it (a dead letter) so its sender stops re-sending it."""

    reason = "invalid"

    def __init__(self, detail: str, msg_id: str, sender: str) -> None:
        super().__init__(detail)
        self.msg_id = msg_id
        self.sender = sender


class UnknownLink(EnvelopeError):
    """Arrived on a topic that belongs to no circle this companion is in."""

    reason = "unknown_link"


@dataclass(frozen=True)
class Message:
    msg_id: str  # 32 hex
    sender: str
    sent_at: float
    type: str
    payload: dict[str, Any]


def _subkey(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, b"hugbutton/v1 " + label, hashlib.sha256).digest()


def inbox_tag(link_key: bytes, member_id: str) -> str:
    return hmac.new(
        _subkey(link_key, b"topic"), b"inbox\x00" + member_id.encode(), hashlib.sha256
    ).hexdigest()


def inbox_topic(link_key: bytes, member_id: str, mailbox: str) -> str:
    return f"{TOPIC_ROOT}/in/{mailbox}/{inbox_tag(link_key, member_id)}"


def inbox_filter(mailbox: str) -> str:
    """The one subscription that covers this companion's inboxes in every circle."""
    return f"{TOPIC_ROOT}/in/{mailbox}/+"


def presence_id(presence_key: bytes) -> str:
    """What names a companion's presence topic: from its presence key, known only to its circles."""
    return _subkey(presence_key, b"presence topic").hex()


def presence_topic(presence_key: bytes) -> str:
    """A companion's retained presence topic; it names no one."""
    return f"{TOPIC_ROOT}/pr/{presence_id(presence_key)}"


PRESENCE_PREFIX = f"{TOPIC_ROOT}/pr/"


def acl_lines(mailbox: str, presence_key: bytes) -> str:
    """The per-account lines of deploy/acl.example for one companion (its broker user is its mailbox):
    write access to its own presence topic, the one thing the shared `pattern` lines cannot say."""
    return f"user {mailbox}\ntopic write {presence_topic(presence_key)}\n"


def rendezvous_topic(code_key: bytes, side: str) -> str:
    """A linking rendezvous, from the code's (scrypt) key: see linking.code_key."""
    return f"{TOPIC_ROOT}/rv/{_subkey(code_key, b'rendezvous').hex()}/{side}"


def _ad(topic: str, sender: str) -> bytes:
    return _AD_LABEL + topic.encode() + b"\x00" + sender.encode()


def seal_bytes(key: bytes, ad: bytes, plaintext: bytes) -> bytes:
    """Low-level AEAD: version | nonce | ciphertext under a subkey of `key`."""
    nonce = os.urandom(NONCE_LEN)
    return bytes([VERSION]) + nonce + ChaCha20Poly1305(_subkey(key, b"seal")).encrypt(nonce, plaintext, ad)


def open_bytes(key: bytes, ad: bytes, data: bytes, limit: int = MAX_ENVELOPE) -> bytes:
    """Inverse of `seal_bytes` for data of at most `limit` bytes; raises Garbled or Forged."""
    check_shape(data, limit)
    try:
        return ChaCha20Poly1305(_subkey(key, b"seal")).decrypt(
            data[1 : 1 + NONCE_LEN], data[1 + NONCE_LEN :], ad
        )
    except InvalidTag:
        raise Forged("authentication failed") from None


def check_shape(data: bytes, limit: int = MAX_ENVELOPE) -> None:
    if len(data) < 1 + NONCE_LEN + TAG_LEN:
        raise Garbled(f"{len(data)} bytes is too short")
    if len(data) > limit:
        raise Garbled(f"{len(data)} bytes is too long")
    if data[0] != VERSION:
        raise Garbled(f"unknown version {data[0]}")


def seal(
    key: bytes,
    topic: str,
    sender: str,
    type_: str,
    payload: Mapping[str, Any],
    sent_at: float,
    msg_id: str | None = None,
) -> tuple[str, bytes]:
    """Seal a message for `topic`; returns (msg id hex, envelope bytes)."""
    mid = bytes.fromhex(msg_id) if msg_id is not None else os.urandom(MSG_ID_LEN)
    if len(mid) != MSG_ID_LEN:
        raise RelayError("a message id has 16 bytes")
    body = json.dumps({"f": sender, "t": type_, "p": dict(payload)}, separators=(",", ":")).encode()
    plain = _HEADER.pack(mid, sent_at) + body
    plain += b" " * (-len(plain) % PAD_TO)
    data = seal_bytes(key, _ad(topic, sender), plain)
    if len(data) > MAX_ENVELOPE:
        raise RelayError(f"message too large ({len(data)} bytes sealed, limit {MAX_ENVELOPE})")
    return mid.hex(), data


def open_envelope(key: bytes, topic: str, candidates: Iterable[str], data: bytes) -> Message:
    """Open an envelope that arrived on `topic`, from one of `candidates` (member ids of the circle).

    Raises Garbled (not an envelope) or Forged (no candidate's associated data authenticates it, or the
    authenticated content disagrees with itself). Changes nothing.
    """
    check_shape(data)
    aead = ChaCha20Poly1305(_subkey(key, b"seal"))
    nonce, ct = data[1 : 1 + NONCE_LEN], data[1 + NONCE_LEN :]
    for sender in candidates:
        try:
            plain = aead.decrypt(nonce, ct, _ad(topic, sender))
        except InvalidTag:
            continue
        return _parse(plain, sender)
    raise Forged("no member of this circle sealed it for this topic")


def _parse(plain: bytes, sender: str) -> Message:
    if len(plain) < _HEADER.size + 2:
        raise Garbled("sealed content too short")
    raw_id, sent_at = _HEADER.unpack_from(plain)
    mid = bytes(raw_id).hex()
    if not math.isfinite(sent_at) or sent_at <= 0:
        raise Invalid(f"sent-at {sent_at!r} is not a time", mid, sender)
    try:
        body: Any = json.loads(plain[_HEADER.size :].decode())
    except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting is garbage too
        raise Invalid("sealed content is not JSON", mid, sender) from None
    if not isinstance(body, dict):
        raise Invalid("sealed content is not an object", mid, sender)
    fields: dict[str, Any] = body  # pyright: ignore[reportUnknownVariableType]
    f, t, p = fields.get("f"), fields.get("t"), fields.get("p")
    if not isinstance(t, str) or not isinstance(p, dict):
        raise Invalid("sealed content lacks type or payload", mid, sender)
    if f != sender:
        raise Forged("sealed sender differs from the authenticated sender")
    payload: dict[str, Any] = p  # pyright: ignore[reportUnknownVariableType]
    return Message(msg_id=mid, sender=sender, sent_at=float(sent_at), type=t, payload=payload)
