"""Linking phones with a short code: SPAKE2 over the broker turns the code into a shared key.

Phone A (already in the circle, or starting one)::

    offer = await create_link_code(store, me, url)      # offer.code == "K7PM-4Q2X", offer.qr_png()
    result = await offer.wait()                         # LinkResult, or CodeExpired

Phone B types the code (or scans `hugbutton:link:K7PM-4Q2X`)::

    result = await join_with_code("k7pm 4q2x", store, me, url)

The code is 8 characters from a 31-letter alphabet without look-alikes (no 0/O, 1/I/L). It is both the
SPAKE2 password and, through scrypt (slow on purpose), the rendezvous: hug/v1/rv/<hex>/a|b. So the topic
space cannot be filled in advance (31^8 codes, each ~50 ms of scrypt to map), an eavesdropper on the
broker learns nothing, a mistyped code reaches no offer at all, and a stranger who watches the broker and
sees a joiner's topic can neither end that exchange nor learn the code:

- every message is size-capped and parsed defensively; retained messages are ignored;
- the offering phone runs each joiner's exchange (session) on its own, answers at most
  ``MAX_ATTEMPTS`` hellos per code (each is one online guess at the whole code) and ignores whatever
  fails to authenticate inside a session, so junk never ends the real one;
- notices that end an exchange ("expired", "used") carry a MAC under a key derived from the code, so
  only someone who knows the code can send them;
- a code lives ``CODE_TTL_S`` whatever arrives, and is used once.

Exchange (JSON on the rendezvous topics; s = B's random session id)::

    B -> b: hello   {s, m: SPAKE2_B msg}
    A -> a: confirm {s, m: SPAKE2_A msg, c: HMAC(K_A, transcript)}   (or a MACed notice: expired / used)
    B -> a: info    {s, c: HMAC(K_B, transcript), x: sealed(B's member record)}
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import aiomqtt
import segno
import spake2  # pyright: ignore[reportMissingTypeStubs]
from spake2.ed25519_basic import NotOnCurve  # pyright: ignore[reportMissingTypeStubs]

from hugapp.core import relaystore as rs
from hugapp.core.envelope import EnvelopeError, RelayError, open_bytes, rendezvous_topic, seal_bytes
from hugapp.core.relay import Relay, connect_any, parse_broker_urls, publish
from hugapp.core.store import Store, StoreError

log = logging.getLogger("hugapp.linking")

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LEN = 8
CODE_TTL_S = 180.0
MAX_ATTEMPTS = 3  # hellos answered per code: each is one online guess at all 8 characters
MAX_RENDEZVOUS_MSG = 16 * 1024  # bytes: a welcome carries every member of the circle (~300 B each)
_QUEUE = 64  # rendezvous messages waiting; a flood beyond it is dropped
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True)
class Purpose:
    """What a code is for. Codes for different purposes meet on different rendezvous topics and run
    SPAKE2 under different identities, so a code typed in the wrong place reaches nothing."""

    salt: bytes  # of the rendezvous key (scrypt)
    id_a: bytes  # SPAKE2 identity of the offering side
    id_b: bytes  # ... and of the joining side
    qr_prefix: str  # what its QR code says before the code
    where: str  # where in the app a person types it


LINK = Purpose(
    b"hugbutton/v1 rendezvous",
    b"hugbutton/v1 link offer",
    b"hugbutton/v1 link join",
    "hugbutton:link:",
    "Link -> Join",
)
HUB = Purpose(
    b"hugbutton/v1 hub rendezvous",
    b"hugbutton/v1 hub offer",
    b"hugbutton/v1 hub join",
    "hugbutton:hub:",
    "Bands -> At school",
)
PURPOSES = (LINK, HUB)


class LinkError(RelayError):
    """Linking failed; the message says what a person can do about it."""


class CodeInvalid(LinkError):
    def __init__(self, detail: str = "") -> None:
        super().__init__(f"That isn't a Hug Button code{detail} — codes look like K7PM-4Q2X")


class CodeElsewhere(CodeInvalid):
    """A code (its QR) for another purpose: a hub's code scanned to link phones, or the reverse."""

    def __init__(self, purpose: Purpose) -> None:
        LinkError.__init__(self, f"That code is for {purpose.where} — type it there")


class CodeExpired(LinkError):
    def __init__(self) -> None:
        super().__init__("That code expired — ask for a new one")


class CodeNotFound(LinkError):
    def __init__(self) -> None:
        super().__init__(
            "No phone is offering that code — check it, or ask for a new one (codes last 3 minutes)"
        )


class CodeBurnt(LinkError):
    """On the joining phone: the offering phone answered all the attempts a code allows."""

    def __init__(self) -> None:
        super().__init__("That code was tried too often and is used up — ask for a new one")


@dataclass(frozen=True)
class LinkResult:
    link_id: str
    member: rs.Member  # the other phone's member record (for B: the offering phone)
    new_circle: bool  # this link created the circle (False: B joined an existing one)


# ---------------------------------------------------------------------------------------- codes


def new_code() -> str:
    return format_code("".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN)))


def format_code(code: str, purpose: Purpose = LINK) -> str:
    c = normalize_code(code, purpose)
    return f"{c[:4]}-{c[4:]}"


def normalize_code(text: str, purpose: Purpose = LINK) -> str:
    """Upper-case, strip spaces/dashes and the purpose's QR prefix; CodeInvalid if it cannot be a
    code, CodeElsewhere if its QR prefix is another purpose's."""
    t = text.strip()
    for p in PURPOSES:
        if t.lower().startswith(p.qr_prefix):
            if p is not purpose:
                raise CodeElsewhere(p)
            t = t[len(p.qr_prefix) :]
    t = "".join(ch for ch in t.upper() if ch not in " -_")
    if len(t) != CODE_LEN:
        raise CodeInvalid(f" (it has {len(t)} characters, a code has {CODE_LEN})")
    bad = sorted({ch for ch in t if ch not in CODE_ALPHABET})
    if bad:
        raise CodeInvalid(f" (codes never contain {', '.join(bad)})")
    return t


def qr_text(code: str, purpose: Purpose = LINK) -> str:
    return purpose.qr_prefix + format_code(code, purpose)


def qr_png(code: str, scale: int = 8, purpose: Purpose = LINK) -> bytes:
    buf = io.BytesIO()
    segno.make(qr_text(code, purpose), error="m").save(buf, kind="png", scale=scale, border=2)
    return buf.getvalue()


def qr_matrix(code: str, purpose: Purpose = LINK) -> list[list[bool]]:
    """Rows of dark (True) / light modules, without the quiet zone, for drawing in the UI."""
    qr = segno.make(qr_text(code, purpose), error="m")
    return [[bool(v) for v in row] for row in qr.matrix]


def qr_terminal(code: str, purpose: Purpose = LINK) -> str:
    """The QR code drawn in text (two modules per character), for a terminal."""
    out = io.StringIO()
    segno.make(qr_text(code, purpose), error="m").terminal(out, compact=True, border=2)
    return out.getvalue()


# ------------------------------------------------------------------------------------- crypto


def _mac(key: bytes, label: bytes, transcript: bytes) -> bytes:
    return hmac.new(hmac.new(key, label, hashlib.sha256).digest(), transcript, hashlib.sha256).digest()


def code_key(code: str, purpose: Purpose = LINK) -> bytes:
    """The rendezvous key of a (normalized) code: scrypt, so a code cannot be found from its topic or
    a notice by trying them all within its lifetime. Blocking (~50 ms): run it in a thread."""
    return hashlib.scrypt(code.encode(), salt=purpose.salt, **_SCRYPT)


def _notice(ckey: bytes, kind: str, sid: str) -> dict[str, Any]:
    """An exchange-ending notice only someone who knows the code can make."""
    tag = hmac.new(ckey, f"notice\x00{kind}\x00{sid}".encode(), hashlib.sha256).digest()[:16]
    return {"t": kind, "s": sid, "k": _b64(tag)}


def _notice_ok(ckey: bytes, msg: dict[str, Any]) -> bool:
    kind, sid, tag = msg.get("t"), msg.get("s"), msg.get("k")
    if not isinstance(kind, str) or not isinstance(sid, str) or not isinstance(tag, str):
        return False
    return hmac.compare_digest(_notice(ckey, kind, sid)["k"], tag)


def _seal_key(key: bytes) -> bytes:
    return hmac.new(key, b"hugbutton/v1 link seal", hashlib.sha256).digest()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(v: object) -> bytes:
    if not isinstance(v, str):
        raise ValueError("not base64 text")
    return base64.b64decode(v, validate=True)


def _spake(side: str, password: bytes, purpose: Purpose) -> Any:
    cls: Any = spake2.SPAKE2_A if side == "a" else spake2.SPAKE2_B
    return cls(password, idA=purpose.id_a, idB=purpose.id_b)


def _finish_b(saved: bytes, msg_a: bytes) -> bytes:
    """B's SPAKE2 finish from its saved state (each candidate answer gets a fresh copy)."""
    cls: Any = spake2.SPAKE2_B
    return bytes(cls.from_serialized(saved).finish(msg_a))


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
    """A rendezvous message, or None for anything else (too large, not JSON, nested too deep, ...)."""
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_RENDEZVOUS_MSG:
        return None
    try:
        v: Any = json.loads(bytes(data))
    except (ValueError, RecursionError):
        return None
    if not isinstance(v, dict):
        return None
    msg = cast(dict[str, Any], v)
    return msg if isinstance(msg.get("s"), str) and isinstance(msg.get("t"), str) else None


async def _pump(client: aiomqtt.Client, queue: asyncio.Queue[dict[str, Any]]) -> None:
    """Rendezvous messages into a bounded queue: retained ones (left on the topic by anyone, any time
    before) and whatever does not fit are dropped, never blocking the exchange."""
    async for message in client.messages:
        decoded = None if message.retain else _decode(message.payload)
        if decoded is not None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(decoded)


def _topics(ckey: bytes) -> tuple[str, str]:
    return rendezvous_topic(ckey, "a"), rendezvous_topic(ckey, "b")


# ------------------------------------------------------------------------------------ offering


R = TypeVar("R")
# What the offering side makes of the joiner's sealed info, given the exchange's key: its result and
# the bundle sealed back in the welcome. Raising LinkError ends the offer.
Admit = Callable[[dict[str, Any], bytes], tuple[R, dict[str, Any]]]


class CodeOffer(Generic[R]):
    """A code being offered; `await wait()` for the outcome. Single use; stops listening when done."""

    def __init__(
        self, code: str, expires_at: float, link_id: str | None = None, purpose: Purpose = LINK
    ) -> None:
        self.code = code
        self.expires_at = expires_at
        self.link_id = link_id
        self.purpose = purpose
        self.ready = asyncio.Event()
        self._task: asyncio.Task[R] | None = None

    def qr_text(self) -> str:
        return qr_text(self.code, self.purpose)

    def qr_png(self, scale: int = 8) -> bytes:
        return qr_png(self.code, scale, self.purpose)

    def qr_matrix(self) -> list[list[bool]]:
        return qr_matrix(self.code, self.purpose)

    def qr_terminal(self) -> str:
        return qr_terminal(self.code, self.purpose)

    async def wait(self) -> R:
        assert self._task is not None
        return await self._task

    async def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, LinkError):
                await self._task

    async def _start(self, serving: Awaitable[R], name: str) -> None:
        """Run the exchange; returns once listening (raises the connection's error if it cannot)."""
        self._task = task = asyncio.ensure_future(serving)
        task.set_name(name)
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done() and not self.ready.is_set():
            task.result()  # raises the connection error


LinkOffer = CodeOffer[LinkResult]


async def offer_code(
    broker_url: str,
    admit: Admit[R],
    *,
    purpose: Purpose,
    clock: Callable[[], float] = time.time,
    ttl: float = CODE_TTL_S,
    poll: float = 0.25,
    tls_context: ssl.SSLContext | None = None,
) -> CodeOffer[R]:
    """Offer a fresh code for `purpose`; `admit` decides what a joiner who knows it gets."""
    offer: CodeOffer[R] = CodeOffer(new_code(), clock() + ttl, purpose=purpose)
    await offer._start(  # pyright: ignore[reportPrivateUsage]
        _serve_exchange(offer, broker_url, admit, purpose, clock, poll, tls_context), "code-offer"
    )
    return offer


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
    offer: LinkOffer = CodeOffer(new_code(), clock() + ttl, link_id)
    await offer._start(  # pyright: ignore[reportPrivateUsage]
        _serve_offer(offer, store, identity, broker_url, circle_name, clock, relay, poll, tls_context),
        "link-offer",
    )
    return offer


@dataclass(frozen=True)
class _Session:
    """One joiner's exchange on the offering phone."""

    key: bytes
    transcript: bytes


# Everything the spake2 package raises for a bad element (a point off the curve, the wrong side, ...).
_BAD_ELEMENT = (ValueError, TypeError, IndexError, spake2.spake2.SPAKEError, NotOnCurve)
_ELEMENT_LEN = 33  # side byte + an Ed25519 group element


def _answer_hello(
    code: str, sid: str, element: bytes, purpose: Purpose = LINK
) -> tuple[_Session, dict[str, Any]] | None:
    """A's SPAKE2 step for one hello; None when the element is not a valid group element."""
    state = _spake("a", code.encode(), purpose)
    msg_a: bytes = state.start()
    try:
        key: bytes = state.finish(element)
    except _BAD_ELEMENT:
        return None
    transcript = hashlib.sha256(msg_a + element + sid.encode()).digest()
    confirm = {"t": "confirm", "s": sid, "m": _b64(msg_a), "c": _b64(_mac(key, b"confirm A", transcript))}
    return _Session(key, transcript), confirm


def _open_info(session: _Session, msg: dict[str, Any], topic_b: str) -> dict[str, Any] | None:
    """B's key confirmation and sealed member record, or None if it does not authenticate."""
    try:
        if not hmac.compare_digest(_unb64(msg.get("c")), _mac(session.key, b"confirm B", session.transcript)):
            return None
        ad = topic_b.encode() + str(msg["s"]).encode()
        info: Any = json.loads(
            open_bytes(_seal_key(session.key), ad, _unb64(msg.get("x")), MAX_RENDEZVOUS_MSG)
        )
    except (ValueError, RecursionError, EnvelopeError):
        return None
    return cast(dict[str, Any], info) if isinstance(info, dict) else None


async def _serve_exchange(
    offer: CodeOffer[R],
    broker_url: str,
    admit: Admit[R],
    purpose: Purpose,
    clock: Callable[[], float],
    poll: float,
    tls_context: ssl.SSLContext | None,
) -> R:
    """The offering side of one code: answer hellos (at most MAX_ATTEMPTS), then the one joiner whose
    info authenticates gets `admit`'s bundle, sealed."""
    code = normalize_code(offer.code, purpose)
    ckey = await asyncio.to_thread(code_key, code, purpose)
    topic_a, topic_b = _topics(ckey)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE)
    sessions: dict[str, _Session] = {}
    attempts = 0
    async with _client(broker_url, tls_context) as client:
        await client.subscribe(topic_b)
        pump = asyncio.create_task(_pump(client, queue))
        offer.ready.set()
        try:
            while True:
                if clock() > offer.expires_at:  # whatever arrives, a code lives its TTL and no longer
                    for sid in sessions:
                        await publish(client, topic_a, _encode(_notice(ckey, "expired", sid)))
                    log.info("link code expired", extra={"reason": "code_expired"})
                    raise CodeExpired()
                try:
                    async with asyncio.timeout(poll):
                        msg = await queue.get()
                except TimeoutError:
                    if pump.done():
                        pump.result()
                    continue
                sid, kind = str(msg["s"]), str(msg["t"])
                if kind == "hello" and sid not in sessions:
                    try:
                        element = _unb64(msg.get("m"))
                    except ValueError:
                        continue
                    if len(element) != _ELEMENT_LEN or len(sid) > 64:
                        continue  # not an attempt: nothing to answer
                    if attempts >= MAX_ATTEMPTS:
                        await publish(client, topic_a, _encode(_notice(ckey, "used", sid)))
                        continue
                    attempts += 1
                    answered = _answer_hello(code, sid, element, purpose)
                    if answered is None:
                        continue
                    sessions[sid], confirm = answered
                    await publish(client, topic_a, _encode(confirm))
                elif kind == "info" and sid in sessions:
                    info = _open_info(sessions[sid], msg, topic_b)
                    if info is None:
                        log.info("ignored a link message that does not authenticate")
                        continue
                    key = sessions[sid].key
                    result, bundle = admit(info, key)
                    sealed = seal_bytes(_seal_key(key), topic_a.encode() + sid.encode(), _encode(bundle))
                    await publish(client, topic_a, _encode({"t": "welcome", "s": sid, "x": _b64(sealed)}))
                    return result
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump


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
    def admit(info: dict[str, Any], _key: bytes) -> tuple[LinkResult, dict[str, Any]]:
        return _admit(store, me, offer.link_id, circle_name, info)

    result = await _serve_exchange(offer, broker_url, admit, LINK, clock, poll, tls_context)
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
    lid = link_id if link_id is not None else rs.new_id()
    try:
        if not isinstance(raw, dict):
            raise StoreError("no member record")
        joiner = rs.Member.from_wire(lid, cast(dict[str, Any], raw))
    except StoreError as e:
        raise LinkError(
            f"The other phone sent a member record this app cannot read ({e}) — update both apps"
        ) from None
    now = store.now()
    with store.transaction() as db:
        if new_circle:
            key = secrets.token_bytes(32)
            rs.save_link(db, lid, key, circle_name, now)
            rs.save_member(db, rs.Member(lid, me.member_id, me.name, me.mailbox, me.presence_key, 1), now)
        else:
            circle = rs.link(store, lid)
            if circle is None:
                raise StoreError("this phone is not in that circle")
            key, circle_name = circle.key, circle.name
        taken = [m.signature for m in rs.members(store, lid) if m.member_id != joiner.member_id]
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


async def _next(
    queue: asyncio.Queue[dict[str, Any]], ckey: bytes, sid: str, kind: str, until: float
) -> dict[str, Any]:
    """The next message of `kind` in this exchange; a notice ends it only if it proves the code."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            async with asyncio.timeout(max(0.0, until - loop.time())):
                m = await queue.get()
        except TimeoutError:
            raise CodeNotFound() from None
        if m["s"] != sid:
            continue
        if m["t"] in ("expired", "used") and _notice_ok(ckey, m):
            raise CodeExpired() if m["t"] == "expired" else CodeBurnt()
        if m["t"] == kind:
            return m


async def join_with_code(
    code: str,
    store: Store,
    identity: rs.Identity,
    broker_url: str,
    *,
    timeout: float = 10.0,
    tls_context: ssl.SSLContext | None = None,
) -> LinkResult:
    """Phone B: join the circle offered under `code`. Raises CodeInvalid, CodeExpired, CodeBurnt (the
    code's attempts are used up), CodeNotFound (no offer answered within `timeout` seconds: a mistyped
    code reaches no offer at all). Messages from anyone who does not know the code are ignored."""
    me = identity
    mine = rs.Member("", me.member_id, me.name, me.mailbox, me.presence_key, 1)
    bundle, _key = await join_code(
        code, broker_url, {"member": mine.to_wire()}, purpose=LINK, timeout=timeout, tls_context=tls_context
    )
    return _accept(store, me, bundle)


async def join_code(
    code: str,
    broker_url: str,
    info: dict[str, Any],
    *,
    purpose: Purpose,
    timeout: float = 10.0,
    tls_context: ssl.SSLContext | None = None,
) -> tuple[dict[str, Any], bytes]:
    """The joining side of a code: send `info` sealed, return the offer's sealed bundle and the
    exchange's key. Raises CodeInvalid, CodeExpired, CodeBurnt, CodeNotFound as join_with_code."""
    c = normalize_code(code, purpose)
    ckey = await asyncio.to_thread(code_key, c, purpose)
    topic_a, topic_b = _topics(ckey)
    sid = secrets.token_hex(8)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE)
    loop = asyncio.get_running_loop()
    async with _client(broker_url, tls_context) as client:
        await client.subscribe(topic_a)
        pump = asyncio.create_task(_pump(client, queue))
        try:
            state: Any = _spake("b", c.encode(), purpose)
            msg_b: bytes = state.start()
            saved: bytes = state.serialize()  # a forged confirm must not use up our one finish()
            await publish(client, topic_b, _encode({"t": "hello", "s": sid, "m": _b64(msg_b)}))
            until = loop.time() + timeout
            while True:
                m = await _next(queue, ckey, sid, "confirm", until)
                try:
                    msg_a = _unb64(m.get("m"))
                    key = _finish_b(saved, msg_a)
                    transcript = hashlib.sha256(msg_a + msg_b + sid.encode()).digest()
                    if hmac.compare_digest(_unb64(m.get("c")), _mac(key, b"confirm A", transcript)):
                        break
                except _BAD_ELEMENT:
                    pass
            sealed = seal_bytes(_seal_key(key), topic_b.encode() + sid.encode(), _encode(info))
            hello = {"t": "info", "s": sid, "c": _b64(_mac(key, b"confirm B", transcript)), "x": _b64(sealed)}
            await publish(client, topic_b, _encode(hello))
            until = loop.time() + timeout
            while True:
                m = await _next(queue, ckey, sid, "welcome", until)
                try:
                    bundle: Any = json.loads(
                        open_bytes(
                            _seal_key(key),
                            topic_a.encode() + sid.encode(),
                            _unb64(m.get("x")),
                            MAX_RENDEZVOUS_MSG,
                        )
                    )
                except (ValueError, RecursionError, EnvelopeError):
                    continue
                if isinstance(bundle, dict):
                    return cast(dict[str, Any], bundle), key
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump


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
