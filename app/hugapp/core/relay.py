"""Phone-to-phone relay over any MQTT 3.1.1/5 broker, sealed end to end (see envelope.py for the wire).

Correctness comes from this module and the store, not from the broker (end-to-end argument):

* a message is written to the durable outbox (SQLite) before it is published, and re-published on every
  (re)connect, whenever the recipient's presence turns online, and every `retry_interval` seconds of
  the injected clock, until the recipient's end-to-end acknowledgement arrives;
* the recipient acknowledges only after its handler returned (having stored the message durably) and
  records the message id; a message id already recorded is dropped and only re-acknowledged, so
  duplicates from the broker, from retries or after a restart are never handled twice.

So the broker may lose or duplicate messages: QoS 1, a persistent session and a retained presence with
a last will only make delivery prompt. Reconnects back off from 1 s, doubling to 30 s, with jitter.

Handler contract: `on_message(incoming)` is awaited once per message id; if it raises, nothing is
recorded or acknowledged and the sender's retry calls it again. The relay alone records received ids,
after the handler returned: a companion killed in between gets the message again, so a handler's
writes are idempotent by their own keys (the router's hug ids).

Messages enter the outbox through one door, :class:`Outbox`: `Relay.send` for ad-hoc messages, or
`Outbox.to_circle`/`to_member` inside a caller's own transaction with ids the caller derives.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import random
import socket
import sqlite3
import ssl
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self, TypeVar
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as mqtt
from aiomqtt.types import PahoSocket

from hugapp.core import relaystore as rs
from hugapp.core.envelope import (
    MAX_ENVELOPE,
    PRESENCE_PREFIX,
    EnvelopeError,
    Garbled,
    Invalid,
    Message,
    RelayError,
    Replayed,
    UnknownLink,
    inbox_filter,
    inbox_topic,
    open_envelope,
    presence_topic,
    seal,
)
from hugapp.core.store import Store, StoreError

log = logging.getLogger("hugapp.relay")

T = TypeVar("T")

# Hugs are small and answered at once: Nagle's algorithm with delayed ACKs would hold them ~40 ms.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

INBOX_QUEUE = 2000  # envelopes waiting to be opened; beyond it the broker's excess is dropped
MAX_HANDLER_FAILURES = 3  # a message whose handler keeps failing is dropped (acknowledged) after this
MAX_FAILING = 1000  # message ids whose failures are counted at once
PRESENCE_RESEND_S = 5.0  # at most one presence-triggered resend per member in this time
REJECT_LOG_S = 60.0  # rejected envelopes: one log line per reason in this time, with the count
JUNK_NOTICE_S = 3600.0  # "junk is arriving" is said once per hour at most

ACK = "sys.ack"
MEMBER_ADDED = "sys.member-added"
MEMBER_REMOVED = "sys.member-removed"
PRESENCE = "sys.presence"


@dataclass(frozen=True)
class Incoming:
    link_id: str
    sender: str
    msg_id: str
    type: str
    payload: dict[str, Any]
    sent_at: float


OnMessage = Callable[[Incoming], Awaitable[None]]
OnAcked = Callable[[str, str], object]  # (msg id, member id that acknowledged) -> None or awaitable
OnPresence = Callable[[str, str, bool], object]  # (link id, member id, online)
OnMembers = Callable[[str], object]  # (link id) membership changed
OnPublished = Callable[[str, str], None]  # (msg id, recipient): handed to the broker (not yet delivered)
OnRejected = Callable[[str, str], None]  # (reason code, topic): for security counters and tests


@dataclass
class RelayStats:
    connects: int = 0
    published: int = 0
    received: int = 0
    handled: int = 0
    duplicates: int = 0
    acks_sent: int = 0
    acks_received: int = 0
    rejected: dict[str, int] = field(default_factory=dict[str, int])
    presence_let_go: int = 0  # subscriptions left in the broker's session from before, dropped
    attempts: int = 0  # connection attempts, failed or not


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_broker_url(url: str) -> BrokerAddress:
    """mqtt://[user[:password]@]host[:port] (1883) or mqtts://... (8883, TLS)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise RelayError(f"broker URL must start with mqtt:// or mqtts://, not {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise RelayError(f"broker URL {url!r} names no host")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def parse_broker_urls(urls: str) -> list[BrokerAddress]:
    """One broker, or the nodes of one cluster separated by commas (mqtt://a:1883,mqtt://b:1883):
    a companion connects to the first it can reach and moves on to the next when one fails."""
    parts = [u for u in urls.split(",") if u.strip()]
    if not parts:
        raise RelayError("no broker URL given")
    return [parse_broker_url(u) for u in parts]


def _retrieve(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


class _Client(aiomqtt.Client):
    """aiomqtt 2.5's client, quiet when a broker node dies under it. Otherwise it may (a) add a writer
    for a socket paho has just closed (asyncio logs an OSError traceback, or worse, a reused file
    descriptor gets the writer), (b) leave the disconnection's error unretrieved (asyncio logs
    "Future exception was never retrieved") and (c) raise CancelledError out of paho's reader when a
    connect that timed out is answered late ("Exception in callback None()"). The caller learns of the
    loss through MqttError anyway."""

    def __init__(self, broker: BrokerAddress, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.broker = broker
        self._disconnected.add_done_callback(_retrieve)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self._disconnected.add_done_callback(_retrieve)  # a fresh future once connected
        return self

    async def _wait_for(self, fut: Awaitable[T], timeout: float | None) -> T:
        """Wait for the broker's answer (PUBACK, SUBACK, CONNACK), but not past the connection's end:
        aiomqtt 2.5 waits out its whole timeout (10 s) for an answer that can no longer come, which
        held a relay's message loop 10 s after every cut while an ack was on its way."""
        lost = self._disconnected
        waiter = asyncio.ensure_future(fut)
        limit = self.timeout if timeout is None else timeout
        done, _ = await asyncio.wait(
            {waiter, lost}, timeout=None if limit == math.inf else limit, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        if lost.done():
            raise aiomqtt.MqttError("the connection ended while waiting for the broker")
        raise aiomqtt.MqttError("Operation timed out")

    def _on_disconnect(self, *args: Any, **kwargs: Any) -> None:
        if self._connected.cancelled():
            return  # the connect was given up (timeout): no one waits for this connection
        super()._on_disconnect(*args, **kwargs)

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: PahoSocket) -> None:
        def write() -> None:
            try:
                client.loop_write()
            except Exception as exc:  # noqa: BLE001 (as aiomqtt: a broken pipe means the connection is gone)
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def register() -> None:
            if sock.fileno() < 0:
                return  # closed meanwhile: the reader has seen the loss
            with contextlib.suppress(OSError):
                self._loop.add_writer(sock.fileno(), write)

        self._loop.call_soon_threadsafe(register)  # paho may call this from its connect thread


PROBE_S = 5.0  # a new session's own probe comes back within this, or the session is given up


def make_client(a: BrokerAddress, tls_context: ssl.SSLContext | None, **options: Any) -> aiomqtt.Client:
    """An MQTT client for one broker address (TLS if the URL said mqtts://); not yet connected."""
    tls = tls_context if tls_context is not None else (ssl.create_default_context() if a.tls else None)
    return _Client(
        a,
        a.host,
        a.port,
        username=a.username,
        password=a.password,
        tls_context=tls,
        timeout=10,
        socket_options=NO_DELAY,
        **options,
    )


@contextlib.asynccontextmanager
async def connect_any(
    addresses: list[BrokerAddress], tls_context: ssl.SSLContext | None, **options: Any
) -> AsyncGenerator[aiomqtt.Client]:
    """Connected to the first address that answers (in order); the last error if none does."""
    error: aiomqtt.MqttError | None = None
    for a in addresses:
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(make_client(a, tls_context, **options))
        except aiomqtt.MqttError as e:
            log.info("broker %s:%d unreachable: %s", a.host, a.port, e)
            error = e
            continue
        async with stack:
            yield client
        return
    assert error is not None
    raise error


class NotDelivering(aiomqtt.MqttError):
    """The broker took the subscription but did not deliver: the session is given up."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.broker: BrokerAddress | None = getattr(client, "broker", None)
        where = "" if self.broker is None else f"{self.broker.host}:{self.broker.port} "
        super().__init__(f"broker {where}took the subscription but delivered nothing in {PROBE_S:.0f} s")

    def next_first(self, addresses: list[BrokerAddress]) -> list[BrokerAddress]:
        """``addresses`` in the order to try next: the ones after this node first, this node last."""
        if self.broker not in addresses:
            return addresses
        i = addresses.index(self.broker) + 1
        return addresses[i:] + addresses[:i]


async def delivering(
    client: aiomqtt.Client, probe_topic: str | None, ready: asyncio.Event
) -> AsyncGenerator[aiomqtt.Message]:
    """The session's messages (not retained ones), once it has shown that it delivers: an empty
    message published to ``probe_topic`` (one it subscribed to) must come back within ``PROBE_S``,
    then ``ready`` is set; else NotDelivering. A NATS node rejoining its cluster may acknowledge a
    subscription and deliver nothing on it, silently. Empty messages are probes, never yielded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROBE_S
    if probe_topic is None:
        ready.set()
    else:
        await publish(client, probe_topic, b"")
    messages = aiter(client.messages)
    while True:
        if ready.is_set():
            message = await anext(messages)
        else:
            try:
                message = await asyncio.wait_for(anext(messages), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise NotDelivering(client) from None
        if not message.payload:
            ready.set()
        elif not message.retain:
            yield message


async def publish(client: aiomqtt.Client, topic: str, data: bytes, retain: bool = False) -> None:
    """QoS 1 publish that never swallows a cancellation (aiomqtt waits for PUBACK with asyncio.wait_for,
    which on Python 3.11 can drop a cancel that races with the PUBACK)."""
    await client.publish(topic, data, qos=1, retain=retain)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


class Outbox:
    """The one door into the durable outbox (relaystore's relay_outbox table); the Relay publishes it.

    `to_circle`/`to_member` store a message inside the caller's transaction (``db``), so a caller's
    own write and its messages commit together; `poke` then wakes the Relay to publish them.
    """

    def __init__(self, store: Store, identity: rs.Identity) -> None:
        self.store = store
        self.me = identity
        self.wake = asyncio.Event()  # set: the Relay's outbox loop looks for work

    def others(self, link_id: str) -> list[str]:
        """The companions of a circle other than this one (a person without a phone gets nothing)."""
        return [
            m.member_id
            for m in rs.members(self.store, link_id)
            if m.member_id != self.me.member_id and not m.phoneless
        ]

    def to_circle(
        self,
        db: sqlite3.Connection,
        msg_id: str,
        link_id: str,
        type_: str,
        payload: Mapping[str, Any],
        now: float,
    ) -> bool:
        """Store a message for every other member of the circle; False when there is nobody else."""
        others = self.others(link_id)
        if others:
            rs.outbox_add(db, msg_id, link_id, others, type_, payload, now)
        return bool(others)

    def to_member(
        self,
        db: sqlite3.Connection,
        msg_id: str,
        link_id: str,
        member_id: str,
        type_: str,
        payload: Mapping[str, Any],
        now: float,
    ) -> None:
        rs.outbox_add(db, msg_id, link_id, [member_id], type_, payload, now)

    def send(self, link_id: str, payload: Mapping[str, Any], to: str | None, type_: str, now: float) -> str:
        """Store a message (random id) for `to` or every other member, in a transaction of its own."""
        if rs.link(self.store, link_id) is None:
            raise RelayError("this phone is not in that circle")
        circle = self.others(link_id)
        recipients = circle if to is None else [to]
        if to is not None and to not in circle:
            raise RelayError("that person is not in this circle")
        if not recipients:
            raise RelayError("nobody else is in this circle yet")
        msg_id = rs.new_id()
        with self.store.transaction() as db:
            rs.outbox_add(db, msg_id, link_id, recipients, type_, payload, now)
        self.poke()
        return msg_id

    def poke(self) -> None:
        """Publish what was just stored (the Relay, when running, publishes only what is due)."""
        self.wake.set()


class Relay:
    """One MQTT connection per companion, serving every circle this companion belongs to."""

    def __init__(
        self,
        store: Store,
        identity: rs.Identity,
        broker_url: str,
        *,
        clock: Callable[[], float] = time.time,
        on_message: OnMessage | None = None,
        on_acked: OnAcked | None = None,
        on_presence: OnPresence | None = None,
        on_members: OnMembers | None = None,
        on_rejected: OnRejected | None = None,
        on_published: OnPublished | None = None,
        on_junk: Callable[[int], object] | None = None,
        retry_interval: float = 60.0,
        poll_interval: float = 1.0,
        reconnect_min: float = 1.0,
        reconnect_max: float = 4.0,
        keepalive: int = 30,
        tls_context: ssl.SSLContext | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox if outbox is not None else Outbox(store, identity)
        self.me = identity
        self.addresses = parse_broker_urls(broker_url)
        self._at = 0  # the address in use or tried next
        self.clock = clock
        self.on_message = on_message
        self.on_acked = on_acked
        self.on_presence = on_presence
        self.on_members = on_members
        self.on_rejected = on_rejected
        self.on_published = on_published
        self.on_junk = on_junk
        self.retry_interval = retry_interval
        self._last_flush = 0.0
        self.poll_interval = poll_interval
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.keepalive = keepalive
        self.tls_context = tls_context
        self.stats = RelayStats()
        self.connected = asyncio.Event()
        self.presence: dict[tuple[str, str], bool] = {}
        self._client: aiomqtt.Client | None = None
        self._wake = self.outbox.wake
        self._urgent: set[str] = set()
        self._flush_lock = asyncio.Lock()
        self._presence_subs: set[str] = set()
        self._presence_seen: dict[str, tuple[int, int]] = {}  # member -> (epoch, 0 online / 1 offline)
        self._presence_resent: dict[str, float] = {}  # member -> monotonic time of the last resend
        self._resend_due: set[str] = set()
        self._failures: dict[
            str, int
        ] = {}  # message id -> handler failures so far  # members with a deferred resend scheduled
        self._epoch = 0
        self._reject_logged: dict[str, tuple[float, int]] = {}  # reason -> (logged at, count since)
        self._junk_told = -JUNK_NOTICE_S

    # ------------------------------------------------------------------ public API

    @property
    def address(self) -> BrokerAddress:
        """The broker address in use (or tried next)."""
        return self.addresses[self._at]

    async def run(self) -> None:
        """Stay connected until cancelled. On a failure or a lost connection it moves to the next
        address (a cluster's next node) at once; after a round of failures it backs off, but a message
        stored meanwhile (a hug someone waits for) tries again after `reconnect_min`."""
        delay = self.reconnect_min
        failed = 0
        while True:
            connects = self.stats.connects
            a = self.address
            self.stats.attempts += 1
            self._wake.clear()  # a session that works flushes everything; set again: stored since
            try:
                await self._session()
            except aiomqtt.MqttError as e:
                log.info("broker %s:%d unreachable or lost: %s", a.host, a.port, e)
            except Exception:  # a bug must not end the relay silently: say so, and start again
                log.exception("relay session failed; starting it again", extra={"reason": "relay_failed"})
            finally:
                self.connected.clear()
                self._client = None
                self._presence_subs.clear()
            self._at = (self._at + 1) % len(self.addresses)
            if self.stats.connects > connects:  # it worked, then dropped: not a failed attempt
                delay, failed = self.reconnect_min, 0
                if len(self.addresses) > 1:
                    continue  # another node is there now
            failed += 1
            if failed < len(self.addresses):
                continue
            failed = 0
            await self._back_off(min(delay, self.reconnect_max) * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.reconnect_max)

    async def _back_off(self, wait: float) -> None:
        """Sleep `wait` s before the next round, or only `reconnect_min` s if something is (or gets)
        stored to send: the broker may be back, and a press should not wait out a long backoff."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await asyncio.sleep(min(wait, self.reconnect_min))
                await self._wake.wait()

    async def send(
        self, link_id: str, payload: Mapping[str, Any], to: str | None = None, type_: str = "hug"
    ) -> str:
        """Store a message for `to` (None: every other member of the circle) and publish it; returns its
        id. Returns once stored: delivery is reported through `on_acked`, once per recipient."""
        return self.outbox.send(link_id, payload, to, type_, self.clock())

    def poke(self) -> None:
        """Publish what became due (messages just stored in the outbox), without resending the rest."""
        self.outbox.poke()

    def kick(self) -> None:
        """Publish whatever is pending now (e.g. after the app learnt that the network is back)."""
        self._urgent.add("*")
        self._wake.set()

    async def refresh(self) -> None:
        """Subscribe to the presence of members learnt since connecting (after linking)."""
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._subscribe_presence(client)

    async def announce_member(self, link_id: str, member_id: str) -> None:
        """Tell the other members of a circle about a member who just joined (through this phone)."""
        new = rs.member(self.store, link_id, member_id)
        if new is None:
            raise RelayError("no such member in that circle")
        others = [
            m.member_id
            for m in rs.members(self.store, link_id)
            if m.member_id not in (member_id, self.me.member_id) and not m.phoneless
        ]
        for other in others:
            self.outbox.send(link_id, {"member": new.to_wire()}, other, MEMBER_ADDED, self.clock())
        await self.refresh()

    async def remove_member(self, link_id: str, member_id: str) -> None:
        """Remove a member from a circle: every remaining member drops them (sealed member-removed).

        What this guarantees: the remaining phones stop sending to the removed member at once, refuse
        anything sealed as coming from them, and forget their inbox and presence. What it does not:
        the removed phone still knows the circle's link key, so it could decrypt copies of later
        messages if it could read the other inboxes (deploy/'s ACLs forbid that on Mosquitto/EMQX, the
        embedded household broker does not). For a hard cut, link again to start a fresh circle key.
        """
        others = [
            m.member_id
            for m in rs.members(self.store, link_id)
            if m.member_id not in (member_id, self.me.member_id) and not m.phoneless
        ]
        for other in others:
            self.outbox.send(link_id, {"member_id": member_id}, other, MEMBER_REMOVED, self.clock())
        if member_id == self.me.member_id:
            return  # leaving: the others drop this phone; forget the circle (forget_link) once acked
        with self.store.transaction() as db:
            rs.drop_member(db, link_id, member_id)
        await _maybe_await(self.on_members(link_id) if self.on_members else None)

    # ------------------------------------------------------------------ outbox

    async def _outbox_loop(self, client: aiomqtt.Client) -> None:
        last_prune = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            urgent, self._urgent = self._urgent, set()
            if "*" in urgent:
                await self._flush(client, due_only=False)
            else:
                for member_id in urgent:
                    await self._flush(client, due_only=False, recipient=member_id)
                await self._flush(client, due_only=True)
            now = self.clock()
            if now - last_prune > 3600:
                last_prune = now
                rs.outbox_expire(self.store, now - rs.SEEN_RETENTION_S)
                rs.prune_seen(self.store, now - rs.SEEN_RETENTION_S)

    async def _flush(self, client: aiomqtt.Client, due_only: bool, recipient: str | None = None) -> None:
        async with self._flush_lock:
            now = self.clock()
            if now < self._last_flush:  # the wall clock was set back: nothing was published "later"
                rs.outbox_clamp(self.store, now)
            self._last_flush = now
            due = now - self.retry_interval if due_only else None
            for item in rs.outbox_pending(self.store, due_before=due, recipient=recipient):
                await self._publish_item(client, item)

    async def _publish_item(self, client: aiomqtt.Client, item: rs.OutboxItem) -> None:
        circle = rs.link(self.store, item.link_id)
        to = rs.member(self.store, item.link_id, item.recipient)
        if circle is None or to is None:
            return
        topic = inbox_topic(circle.key, to.member_id, to.mailbox)
        _, data = seal(
            circle.key, topic, self.me.member_id, item.type, item.payload, item.sent_at, item.msg_id
        )
        await publish(client, topic, data)
        rs.outbox_published(self.store, item.msg_id, item.recipient)
        self.stats.published += 1
        if self.on_published is not None:
            self.on_published(item.msg_id, item.recipient)

    # ------------------------------------------------------------------ connection

    def _presence_envelope(self, online: bool) -> bytes:
        """Sealed presence with this connection's epoch: a receiver takes only a newer (epoch, state)
        than it has seen, so a replayed presence changes nothing and triggers nothing."""
        topic = presence_topic(self.me.presence_key)
        payload = {"online": online, "epoch": self._epoch}
        _, data = seal(self.me.presence_key, topic, self.me.member_id, PRESENCE, payload, self.clock())
        return data

    async def _session(self) -> None:
        a = self.address
        self._epoch = rs.next_presence_epoch(self.store)
        will = aiomqtt.Will(
            presence_topic(self.me.presence_key), self._presence_envelope(False), qos=1, retain=True
        )
        client = make_client(
            a,
            self.tls_context,
            identifier=self.me.client_id,
            clean_session=False,
            will=will,
            keepalive=self.keepalive,
            queue_type=self._inbox_queue(),
            max_queued_incoming_messages=INBOX_QUEUE,
        )
        async with client:
            self._client = client
            await client.subscribe(inbox_filter(self.me.mailbox), qos=1)
            await self._subscribe_presence(client)
            await publish(
                client, presence_topic(self.me.presence_key), self._presence_envelope(True), retain=True
            )
            self.stats.connects += 1  # counted once subscribed and online: a session that works
            self.connected.set()
            log.info("relay connected to %s:%d", a.host, a.port)
            self._urgent.add("*")
            self._wake.set()
            pump = asyncio.create_task(self._outbox_loop(client), name="relay-outbox")
            try:
                async for message in client.messages:
                    await self._dispatch(client, message.topic.value, bytes(message.payload))
                    if pump.done():
                        pump.result()  # surface its error (MqttError -> reconnect)
            except asyncio.CancelledError:
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await client.publish(
                            presence_topic(self.me.presence_key),
                            self._presence_envelope(False),
                            qos=1,
                            retain=True,
                        )
                raise
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await pump

    async def _let_go_presence(self, client: aiomqtt.Client, topic: str) -> None:
        """A presence this session did not subscribe to: the broker kept the subscription in this
        phone's persistent session from an earlier one (a circle left, a member gone). Not junk from
        a stranger, who reaches no topic this phone has not subscribed to: unsubscribe, quietly."""
        self.stats.presence_let_go += 1
        log.debug("presence on %s, subscribed in an earlier session: unsubscribing", topic)
        await client.unsubscribe(topic)

    async def _subscribe_presence(self, client: aiomqtt.Client) -> None:
        wanted = {
            presence_topic(m.presence_key)
            for circle in rs.links(self.store)
            for m in rs.members(self.store, circle.link_id)
            if m.member_id != self.me.member_id and not m.phoneless
        }
        for topic in sorted(wanted - self._presence_subs):
            self._presence_subs.add(topic)  # first: its retained presence may come before SUBACK returns
            await client.subscribe(topic, qos=1)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    # ------------------------------------------------------------------ receiving

    def _inbox_queue(self) -> type[asyncio.Queue[aiomqtt.Message]]:
        """aiomqtt's incoming queue, bounded, that never admits a payload larger than any envelope:
        a flood of large junk costs its length check and nothing more."""
        relay = self

        class InboxQueue(asyncio.Queue[aiomqtt.Message]):
            def put_nowait(self, item: aiomqtt.Message) -> None:
                payload = item.payload
                if len(payload) > MAX_ENVELOPE:
                    relay._reject(Garbled(f"{len(payload)} bytes is too long"), str(item.topic))
                    return
                if self.full():
                    relay._reject(Garbled("inbox queue full"), str(item.topic))
                    return
                super().put_nowait(item)

        return InboxQueue

    def _reject(self, err: EnvelopeError, topic: str) -> None:
        """Count a refused envelope; log one line per reason and minute (with the count), and tell the
        app once an hour that junk is arriving, however much arrives."""
        self.stats.rejected[err.reason] = self.stats.rejected.get(err.reason, 0) + 1
        now = time.monotonic()
        logged_at, since = self._reject_logged.get(err.reason, (-REJECT_LOG_S, 0))
        if now - logged_at >= REJECT_LOG_S:
            level = logging.INFO if isinstance(err, Replayed) else logging.WARNING
            more = f" (and {since} more since the last line)" if since else ""
            log.log(
                level,
                "envelope rejected (%s): %s [topic %s]%s",
                err.reason,
                err.detail,
                topic,
                more,
                extra={"reason": err.reason},
            )
            self._reject_logged[err.reason] = (now, 0)
        else:
            self._reject_logged[err.reason] = (logged_at, since + 1)
        if self.on_rejected is not None:
            self.on_rejected(err.reason, topic)
        if not isinstance(err, Replayed) and now - self._junk_told >= JUNK_NOTICE_S:
            self._junk_told = now
            if self.on_junk is not None:
                self.on_junk(sum(self.stats.rejected.values()))

    async def _dispatch(self, client: aiomqtt.Client, topic: str, data: bytes) -> None:
        self.stats.received += 1
        try:
            if topic.startswith(PRESENCE_PREFIX) and topic not in self._presence_subs:
                await self._let_go_presence(client, topic)
            elif topic.startswith(PRESENCE_PREFIX):
                await self._on_presence_message(topic, data)
            else:
                await self._on_inbox_message(client, topic, data)
        except EnvelopeError as e:
            self._reject(e, topic)
        except (aiomqtt.MqttError, asyncio.CancelledError):
            raise
        except Exception:  # one message must not end the session: say so and go on
            log.exception("a message on %s could not be handled", topic, extra={"reason": "dispatch_failed"})

    def _route(self, topic: str) -> rs.Link:
        prefix = inbox_filter(self.me.mailbox)[:-1]
        if topic.startswith(prefix):
            for circle in rs.links(self.store):
                if inbox_topic(circle.key, self.me.member_id, self.me.mailbox) == topic:
                    return circle
        raise UnknownLink("no circle of this phone has that inbox")

    async def _on_inbox_message(self, client: aiomqtt.Client, topic: str, data: bytes) -> None:
        circle = self._route(topic)
        senders = [
            m.member_id
            for m in rs.members(self.store, circle.link_id)
            if m.member_id != self.me.member_id and not m.phoneless
        ]
        try:
            msg = open_envelope(circle.key, topic, senders, data)
        except Invalid as e:
            await self._dead_letter(client, circle, e.sender, e.msg_id, e, topic)
            return
        if msg.type == ACK:
            await self._on_ack(msg)
            return
        now = self.clock()
        if msg.sent_at < now - rs.SEEN_RETENTION_S:
            raise Replayed("older than the dedup window")
        if rs.seen(self.store, msg.msg_id):
            self.stats.duplicates += 1
            self._reject(Replayed(f"message {msg.msg_id[:8]} already received"), topic)
            await self._ack(client, circle, msg.sender, msg.msg_id)
            return
        incoming = Incoming(circle.link_id, msg.sender, msg.msg_id, msg.type, msg.payload, msg.sent_at)
        try:
            if msg.type.startswith("sys."):
                self._apply_control(incoming, now)
            else:
                if self.on_message is not None:
                    await self.on_message(incoming)
                with self.store.transaction() as db:
                    rs.mark_seen(db, msg.msg_id, circle.link_id, msg.sender, now)
        except Invalid as e:
            await self._dead_letter(client, circle, msg.sender, msg.msg_id, e, topic)
            return
        except Exception:
            failures = self._failures.pop(msg.msg_id, 0) + 1
            if failures < MAX_HANDLER_FAILURES:
                self._failures[msg.msg_id] = failures
                while len(self._failures) > MAX_FAILING:
                    self._failures.pop(next(iter(self._failures)))
                log.exception(
                    "message handler failed (%d of %d tries); not acknowledged, the sender will retry",
                    failures,
                    MAX_HANDLER_FAILURES,
                    extra={"reason": "handler_failed"},
                )
                return
            log.exception("message handler failed %d times: a dead letter", failures)
            error = Invalid(f"its handler failed {failures} times", msg.msg_id, msg.sender)
            await self._dead_letter(client, circle, msg.sender, msg.msg_id, error, topic)
            return
        self._failures.pop(msg.msg_id, None)
        self.stats.handled += 1
        await self._ack(client, circle, msg.sender, msg.msg_id)
        if msg.type.startswith("sys."):
            await self._subscribe_presence(client)
            await _maybe_await(self.on_members(circle.link_id) if self.on_members else None)

    async def _dead_letter(
        self, client: aiomqtt.Client, circle: rs.Link, sender: str, msg_id: str, err: Invalid, topic: str
    ) -> None:
        """An authentic message that cannot be taken: recorded as received and acknowledged, so its
        sender stops re-sending it, and counted and logged (once per reason and minute) as rejected."""
        with self.store.transaction() as db:
            rs.mark_seen(db, msg_id, circle.link_id, sender, self.clock())
        self._reject(err, topic)
        await self._ack(client, circle, sender, msg_id)

    def _apply_control(self, m: Incoming, now: float) -> None:
        with self.store.transaction() as db:
            if m.type == MEMBER_ADDED:
                raw = m.payload.get("member")
                if not isinstance(raw, dict):
                    raise Invalid("member-added without a member", m.msg_id, m.sender)
                fields: dict[str, Any] = raw  # pyright: ignore[reportUnknownVariableType]
                try:
                    new = rs.Member.from_wire(m.link_id, fields)
                except StoreError as e:
                    raise Invalid(str(e), m.msg_id, m.sender) from None
                old = rs.member(self.store, m.link_id, new.member_id)
                if old is not None and old.phoneless and new.phoneless:  # records may arrive out of order:
                    new = replace(new, served_by=tuple(sorted({*old.served_by, *new.served_by})))
                if new.member_id != self.me.member_id:
                    rs.save_member(db, new, now)
            elif m.type == MEMBER_REMOVED:
                gone = m.payload.get("member_id")
                if not isinstance(gone, str):
                    raise Invalid("member-removed without a member id", m.msg_id, m.sender)
                if gone == self.me.member_id:
                    rs.drop_link(db, m.link_id)
                else:
                    rs.drop_member(db, m.link_id, gone)
            else:
                log.info("ignoring unknown control message %s", m.type)
            rs.mark_seen(db, m.msg_id, m.link_id, m.sender, now)

    async def _ack(self, client: aiomqtt.Client, circle: rs.Link, to_member: str, msg_id: str) -> None:
        to = rs.member(self.store, circle.link_id, to_member)
        if to is None or rs.link(self.store, circle.link_id) is None:
            return
        topic = inbox_topic(circle.key, to.member_id, to.mailbox)
        _, data = seal(circle.key, topic, self.me.member_id, ACK, {"ids": [msg_id]}, self.clock())
        await publish(client, topic, data)
        self.stats.acks_sent += 1

    async def _on_ack(self, msg: Message) -> None:
        ids = msg.payload.get("ids")
        if not isinstance(ids, list):
            raise Garbled("ack without ids")
        for raw in ids:  # pyright: ignore[reportUnknownVariableType]
            if isinstance(raw, str) and rs.outbox_acked(self.store, raw, msg.sender):
                self.stats.acks_received += 1
                await _maybe_await(self.on_acked(raw, msg.sender) if self.on_acked else None)

    async def _on_presence_message(self, topic: str, data: bytes) -> None:
        if not data:
            return  # a cleared retained message
        known = [
            m
            for circle in rs.links(self.store)
            for m in rs.members(self.store, circle.link_id)
            if m.member_id != self.me.member_id
            and not m.phoneless
            and presence_topic(m.presence_key) == topic
        ]
        if not known:
            raise UnknownLink("presence of nobody in this phone's circles")
        member_id = known[0].member_id
        msg = open_envelope(known[0].presence_key, topic, [member_id], data)
        online, epoch = msg.payload.get("online"), msg.payload.get("epoch")
        if msg.type != PRESENCE or not isinstance(online, bool) or type(epoch) is not int or epoch < 0:
            raise Garbled("not a presence message")
        seen = (epoch, 0 if online else 1)
        if seen <= self._presence_seen.get(member_id, (-1, -1)):
            raise Replayed("presence no newer than the last one")
        self._presence_seen[member_id] = seen
        for m in known:
            changed = self.presence.get((m.link_id, m.member_id)) != online
            self.presence[(m.link_id, m.member_id)] = online
            if changed:
                await _maybe_await(
                    self.on_presence(m.link_id, m.member_id, online) if self.on_presence else None
                )
        if online:
            self._resend_to(member_id)

    def _resend_to(self, member_id: str) -> None:
        """Publish what waits for a member who just came online, at most once per PRESENCE_RESEND_S per
        member: a later request inside the window is deferred to its end, never dropped."""
        now = time.monotonic()
        wait = self._presence_resent.get(member_id, -PRESENCE_RESEND_S) + PRESENCE_RESEND_S - now
        if wait > 0:
            if member_id not in self._resend_due:
                self._resend_due.add(member_id)
                asyncio.get_running_loop().call_later(wait, self._resend_deferred, member_id)
            return
        self._presence_resent[member_id] = now
        self._urgent.add(member_id)
        self._wake.set()

    def _resend_deferred(self, member_id: str) -> None:
        self._resend_due.discard(member_id)
        self._resend_to(member_id)
