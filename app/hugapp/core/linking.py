"""Linking phones with a short code: SPAKE2 over the broker turns the code into a shared key.

Phone A (already in the circle, or starting one)::

    offer = await create_link_code(store, me, url)      # offer.code == "K7PM-4Q2X", offer.qr_png()
    result = await offer.wait()                         # LinkResult, or CodeBurnt / CodeExpired

Phone B types the code (or scans `hugbutton:link:K7PM-4Q2X`)::

    result = await join_with_code("k7pm 4q2x", store, me, url)

The code is 8 characters from a 31-letter alphabet without look-alikes (no 0/O, 1/I/L). The first 4
name the rendezvous topic (hashed: hug/v1/rv/<sha256>/a|b); the whole code is the SPAKE2 password,
so an eavesdropper on the broker learns nothing and an active attacker gets exactly one online guess:
a failed key confirmation burns the code. Codes expire after 3 minutes and are single use.

Exchange (JSON on the rendezvous topics; s = B's random session id)::

    B -> b: hello  {s, m: SPAKE2_B msg}
    A -> a: confirm {s, m: SPAKE2_A msg, c: HMAC(K_A, transcript)}   (or expired / burnt)
    B -> a: info   {s, c: HMAC(K_B, transcript), x: sealed(B's member record)}   (or fail)
    A -> a: welcome {s, x: sealed(link id, link key, circle members, B's signature)}

A new circle gets a fresh random 32-byte link key; if A is already in a circle it shares that circle's
key, so B joins the same circle, and A (through its relay, if given) tells the other members with a
sealed member-added message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import io
import json
import logging
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import aiomqtt
import segno
import spake2  # pyright: ignore[reportMissingTypeStubs]

from hugapp.core import relaystore as rs
from hugapp.core.envelope import EnvelopeError, RelayError, open_bytes, rendezvous_topic, seal_bytes
from hugapp.core.relay import Relay, connect_any, parse_broker_urls, publish
from hugapp.core.store import Store, StoreError

log = logging.getLogger("hugapp.linking")

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LEN = 8
RENDEZVOUS_CHARS = 4
CODE_TTL_S = 180.0
QR_PREFIX = "hugbutton:link:"
_ID_A = b"hugbutton/v1 link offer"
_ID_B = b"hugbutton/v1 link join"


class LinkError(RelayError):
    """Linking failed; the message says what a person can do about it."""


class CodeInvalid(LinkError):
    def __init__(self, detail: str = "") -> None:
        super().__init__(f"That isn't a Hug Button code{detail} — codes look like K7PM-4Q2X")


class CodeMismatch(LinkError):
    def __init__(self) -> None:
        super().__init__("That code didn't match — ask for a new one")


class CodeExpired(LinkError):
    def __init__(self) -> None:
        super().__init__("That code expired — ask for a new one")


class CodeNotFound(LinkError):
    def __init__(self) -> None:
        super().__init__(
            "No phone is waiting for that code (it may have expired or been used) — ask for a new one"
        )


class CodeBurnt(LinkError):
    """On the offering phone: a wrong guess used the code up."""

    def __init__(self) -> None:
        super().__init__("Someone tried a wrong code, so this one is burnt — make a new code")


@dataclass(frozen=True)
class LinkResult:
    link_id: str
    member: rs.Member  # the other phone's member record (for B: the offering phone)
    new_circle: bool  # this link created the circle (False: B joined an existing one)


# ---------------------------------------------------------------------------------------- codes


def new_code() -> str:
    return format_code("".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN)))


def format_code(code: str) -> str:
    c = normalize_code(code)
    return f"{c[:4]}-{c[4:]}"


def normalize_code(text: str) -> str:
    """Upper-case, strip spaces/dashes and a QR prefix; CodeInvalid if it cannot be a code."""
    t = text.strip()
    if t.lower().startswith(QR_PREFIX):
        t = t[len(QR_PREFIX) :]
    t = "".join(ch for ch in t.upper() if ch not in " -_")
    if len(t) != CODE_LEN:
        raise CodeInvalid(f" (it has {len(t)} characters, a code has {CODE_LEN})")
    bad = sorted({ch for ch in t if ch not in CODE_ALPHABET})
    if bad:
        raise CodeInvalid(f" (codes never contain {', '.join(bad)})")
    return t


def qr_text(code: str) -> str:
    return QR_PREFIX + format_code(code)


def qr_png(code: str, scale: int = 8) -> bytes:
    buf = io.BytesIO()
    segno.make(qr_text(code), error="m").save(buf, kind="png", scale=scale, border=2)
    return buf.getvalue()


def qr_matrix(code: str) -> list[list[bool]]:
    """Rows of dark (True) / light modules, without the quiet zone, for drawing in the UI."""
    qr = segno.make(qr_text(code), error="m")
    return [[bool(v) for v in row] for row in qr.matrix]


# ------------------------------------------------------------------------------------- crypto


def _mac(key: bytes, label: bytes, transcript: bytes) -> bytes:
    return hmac.new(hmac.new(key, label, hashlib.sha256).digest(), transcript, hashlib.sha256).digest()


def _seal_key(key: bytes) -> bytes:
    return hmac.new(key, b"hugbutton/v1 link seal", hashlib.sha256).digest()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(v: object) -> bytes:
    if not isinstance(v, str):
        raise ValueError("not base64 text")
    return base64.b64decode(v, validate=True)


def _spake(side: str, password: bytes) -> Any:
    cls: Any = spake2.SPAKE2_A if side == "a" else spake2.SPAKE2_B
    return cls(password, idA=_ID_A, idB=_ID_B)


def _client(
    broker_url: str, tls_context: ssl.SSLContext | None
) -> contextlib.AbstractAsyncContextManager[aiomqtt.Client]:
    """A short-lived clean session on the first node that answers (a cluster's nodes in turn)."""
    return connect_any(
        parse_broker_urls(broker_url),
        tls_context,
        identifier="hug-link-" + secrets.token_hex(8),
        clean_session=True,
    )


def _encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


def _decode(data: object) -> dict[str, Any] | None:
    if not isinstance(data, bytes | bytearray):
        return None
    try:
        v: Any = json.loads(bytes(data))
    except ValueError:
        return None
    return cast(dict[str, Any], v) if isinstance(v, dict) else None


async def _pump(client: aiomqtt.Client, queue: asyncio.Queue[dict[str, Any]]) -> None:
    async for message in client.messages:
        decoded = _decode(message.payload)
        if decoded is not None:
            queue.put_nowait(decoded)


# ------------------------------------------------------------------------------------ offering


class LinkOffer:
    """A code being offered; `await wait()` for the outcome. Single use; stops listening when done."""

    def __init__(self, code: str, expires_at: float, link_id: str | None) -> None:
        self.code = code
        self.expires_at = expires_at
        self.link_id = link_id
        self.ready = asyncio.Event()
        self._task: asyncio.Task[LinkResult] | None = None

    def qr_text(self) -> str:
        return qr_text(self.code)

    def qr_png(self, scale: int = 8) -> bytes:
        return qr_png(self.code, scale)

    def qr_matrix(self) -> list[list[bool]]:
        return qr_matrix(self.code)

    async def wait(self) -> LinkResult:
        assert self._task is not None
        return await self._task

    async def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, LinkError):
                await self._task


async def create_link_code(
    store: Store,
    identity: rs.Identity,
    broker_url: str,
    *,
    link_id: str | None = None,
    circle_name: str = "",
    clock: Callable[[], float] = time.time,
    relay: Relay | None = None,
    ttl: float = CODE_TTL_S,
    poll: float = 0.25,
    tls_context: ssl.SSLContext | None = None,
) -> LinkOffer:
    """Offer a code; returns once listening. `link_id`: invite into that existing circle."""
    if link_id is not None and rs.link(store, link_id) is None:
        raise LinkError("This phone is not in that circle")
    offer = LinkOffer(new_code(), clock() + ttl, link_id)
    offer._task = asyncio.create_task(  # pyright: ignore[reportPrivateUsage]
        _serve_offer(offer, store, identity, broker_url, circle_name, clock, relay, poll, tls_context),
        name="link-offer",
    )
    ready = asyncio.create_task(offer.ready.wait())
    await asyncio.wait({ready, offer._task}, return_when=asyncio.FIRST_COMPLETED)  # pyright: ignore[reportPrivateUsage]
    ready.cancel()
    if offer._task.done() and not offer.ready.is_set():  # pyright: ignore[reportPrivateUsage]
        offer._task.result()  # pyright: ignore[reportPrivateUsage]  # raises the connection error
    return offer


async def _serve_offer(
    offer: LinkOffer,
    store: Store,
    me: rs.Identity,
    broker_url: str,
    circle_name: str,
    clock: Callable[[], float],
    relay: Relay | None,
    poll: float,
    tls_context: ssl.SSLContext | None,
) -> LinkResult:
    code = normalize_code(offer.code)
    topic_a, topic_b = (
        rendezvous_topic(code[:RENDEZVOUS_CHARS], "a"),
        rendezvous_topic(code[:RENDEZVOUS_CHARS], "b"),
    )
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=0)
    async with _client(broker_url, tls_context) as client:
        await client.subscribe(topic_b)
        pump = asyncio.create_task(_pump(client, queue))
        offer.ready.set()
        session: str | None = None
        state: Any = None
        key = transcript = b""
        try:
            while True:
                try:
                    async with asyncio.timeout(poll):
                        msg = await queue.get()
                except TimeoutError:
                    if pump.done():
                        pump.result()
                    if session is None and clock() > offer.expires_at:
                        log.info("link code expired unused", extra={"reason": "code_expired"})
                        raise CodeExpired() from None
                    continue
                sid, kind = msg.get("s"), msg.get("t")
                if not isinstance(sid, str) or (session is not None and sid != session):
                    continue
                if kind == "hello" and session is None:
                    if clock() > offer.expires_at:
                        await publish(client, topic_a, _encode({"t": "expired", "s": sid}))
                        log.info("link code expired", extra={"reason": "code_expired"})
                        raise CodeExpired()
                    session = sid
                    state = _spake("a", code.encode())
                    msg_a: bytes = state.start()
                    try:
                        msg_b = _unb64(msg.get("m"))
                        key = state.finish(msg_b)
                    except (ValueError, spake2.spake2.SPAKEError) as e:
                        log.warning(
                            "link attempt with a bad SPAKE2 message: %s", e, extra={"reason": "code_burnt"}
                        )
                        await publish(client, topic_a, _encode({"t": "burnt", "s": sid}))
                        raise CodeBurnt() from None
                    transcript = hashlib.sha256(msg_a + msg_b + sid.encode()).digest()
                    confirm = _mac(key, b"confirm A", transcript)
                    await publish(
                        client,
                        topic_a,
                        _encode({"t": "confirm", "s": sid, "m": _b64(msg_a), "c": _b64(confirm)}),
                    )
                elif kind == "fail" and session is not None:
                    log.warning(
                        "link code burnt: the other phone's code did not match",
                        extra={"reason": "code_burnt"},
                    )
                    raise CodeBurnt()
                elif kind == "info" and session is not None:
                    try:
                        ok = hmac.compare_digest(_unb64(msg.get("c")), _mac(key, b"confirm B", transcript))
                        info = (
                            json.loads(
                                open_bytes(
                                    _seal_key(key), topic_b.encode() + session.encode(), _unb64(msg.get("x"))
                                )
                            )
                            if ok
                            else None
                        )
                    except (ValueError, EnvelopeError):
                        ok, info = False, None
                    if not ok or not isinstance(info, dict):
                        log.warning(
                            "link code burnt: key confirmation failed", extra={"reason": "code_burnt"}
                        )
                        await publish(client, topic_a, _encode({"t": "burnt", "s": session}))
                        raise CodeBurnt()
                    result, bundle = _admit(store, me, offer.link_id, circle_name, cast(dict[str, Any], info))
                    sealed = seal_bytes(_seal_key(key), topic_a.encode() + session.encode(), _encode(bundle))
                    await publish(client, topic_a, _encode({"t": "welcome", "s": session, "x": _b64(sealed)}))
                    break
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump
    if relay is not None:
        if not result.new_circle:
            await relay.announce_member(result.link_id, result.member.member_id)
        await relay.refresh()
    log.info("linked a phone into circle %s", result.link_id[:8])
    return result


def _admit(
    store: Store, me: rs.Identity, link_id: str | None, circle_name: str, info: dict[str, Any]
) -> tuple[LinkResult, dict[str, Any]]:
    """A's side: store the newcomer (and the new circle) and build the sealed welcome bundle."""
    new_circle = link_id is None
    raw = info.get("member")
    if not isinstance(raw, dict):
        raise CodeBurnt()
    lid = link_id if link_id is not None else rs.new_id()
    try:
        joiner = rs.Member.from_wire(lid, cast(dict[str, Any], raw))
    except StoreError:
        raise CodeBurnt() from None
    now = store.now()
    with store.transaction() as db:
        if new_circle:
            key = secrets.token_bytes(32)
            rs.save_link(db, lid, key, circle_name, now)
            rs.save_member(db, rs.Member(lid, me.member_id, me.name, me.mailbox, me.presence_key, 1), now)
        else:
            row = db.execute("SELECT key, name FROM links WHERE link_id = ?", (lid,)).fetchone()
            key, circle_name = bytes(row[0]), str(row[1])
        taken = [
            int(r[0])
            for r in db.execute(
                "SELECT signature FROM link_members WHERE link_id = ? AND member_id != ?",
                (lid, joiner.member_id),
            )
        ]
        joiner = rs.Member(
            lid, joiner.member_id, joiner.name, joiner.mailbox, joiner.presence_key, rs.free_signature(taken)
        )
        rs.save_member(db, joiner, now)
    everyone = rs.members(store, lid)
    bundle = {
        "link_id": lid,
        "key": key.hex(),
        "name": circle_name,
        "members": [m.to_wire() for m in everyone],
        "offerer": me.member_id,
        "new_circle": new_circle,
    }
    return LinkResult(lid, joiner, new_circle), bundle


# --------------------------------------------------------------------------------------- joining


async def join_with_code(
    code: str,
    store: Store,
    identity: rs.Identity,
    broker_url: str,
    *,
    timeout: float = 15.0,
    tls_context: ssl.SSLContext | None = None,
) -> LinkResult:
    """Phone B: join the circle offered under `code`. Raises CodeInvalid, CodeMismatch, CodeExpired,
    CodeNotFound (nobody answered within `timeout` seconds)."""
    c = normalize_code(code)
    topic_a, topic_b = (
        rendezvous_topic(c[:RENDEZVOUS_CHARS], "a"),
        rendezvous_topic(c[:RENDEZVOUS_CHARS], "b"),
    )
    sid = secrets.token_hex(8)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    me = identity
    async with _client(broker_url, tls_context) as client:
        await client.subscribe(topic_a)
        pump = asyncio.create_task(_pump(client, queue))
        try:

            async def reply(*kinds: str) -> dict[str, Any]:
                while True:
                    try:
                        async with asyncio.timeout(timeout):
                            m = await queue.get()
                    except TimeoutError:
                        raise CodeNotFound() from None
                    if m.get("s") != sid:
                        continue
                    if m.get("t") == "expired":
                        raise CodeExpired()
                    if m.get("t") == "burnt":
                        raise CodeMismatch()
                    if m.get("t") in kinds:
                        return m

            state: Any = _spake("b", c.encode())
            msg_b: bytes = state.start()
            await publish(client, topic_b, _encode({"t": "hello", "s": sid, "m": _b64(msg_b)}))
            m = await reply("confirm")
            try:
                msg_a = _unb64(m.get("m"))
                key: bytes = state.finish(msg_a)
                transcript = hashlib.sha256(msg_a + msg_b + sid.encode()).digest()
                ok = hmac.compare_digest(_unb64(m.get("c")), _mac(key, b"confirm A", transcript))
            except (ValueError, spake2.spake2.SPAKEError):
                ok, key, transcript = False, b"", b""
            if not ok:
                await publish(client, topic_b, _encode({"t": "fail", "s": sid}))
                raise CodeMismatch()
            mine = rs.Member("", me.member_id, me.name, me.mailbox, me.presence_key, 1)
            sealed = seal_bytes(
                _seal_key(key), topic_b.encode() + sid.encode(), _encode({"member": mine.to_wire()})
            )
            await publish(
                client,
                topic_b,
                _encode(
                    {"t": "info", "s": sid, "c": _b64(_mac(key, b"confirm B", transcript)), "x": _b64(sealed)}
                ),
            )
            m = await reply("welcome")
            try:
                bundle: Any = json.loads(
                    open_bytes(_seal_key(key), topic_a.encode() + sid.encode(), _unb64(m.get("x")))
                )
            except (ValueError, EnvelopeError):
                raise CodeMismatch() from None
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump
    return _accept(store, me, cast(dict[str, Any], bundle) if isinstance(bundle, dict) else {})


def _accept(store: Store, me: rs.Identity, bundle: dict[str, Any]) -> LinkResult:
    try:
        lid = str(bundle["link_id"])
        key = bytes.fromhex(str(bundle["key"]))
        raw_members: list[Any] = list(bundle["members"])
        everyone = [rs.Member.from_wire(lid, cast(dict[str, Any], d)) for d in raw_members]
        offerer = next(m for m in everyone if m.member_id == bundle["offerer"])
    except (KeyError, ValueError, TypeError, StoreError, StopIteration) as e:
        raise LinkError(
            f"The other phone sent a circle this app cannot read ({e}) — update both apps"
        ) from None
    now = store.now()
    with store.transaction() as db:
        rs.save_link(db, lid, key, str(bundle.get("name", "")), now)
        for m in everyone:
            rs.save_member(db, m, now)
    return LinkResult(lid, offerer, bool(bundle.get("new_circle", False)))
