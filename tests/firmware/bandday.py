"""The scripted day: BandLogic driven through a school day with in-memory fakes, outcomes asserted.

Runs unchanged under CPython and real MicroPython (``run_day()``); not installed on a band. It uses:
- ``Harness``: the shell's role: a simulated clock in 5 ms polls, the button, the action queue,
  a motor timeline summary (runs, on-time, kicks) and the BLE link to one ``FakePhone``;
- ``FakePhone``: the phone's side of hugproto (reads State, pairs by X25519, authenticates, stores presses
  deduplicated by seq and acknowledges them, sends Play and counts Felt receipts).

The day: boot, pair (5 s hold, X25519 key agreement), 20 presses (taps and squeezes) acknowledged, 20 hugs
played with a Felt each, disconnects in between (presses made offline arrive once on reconnect; a
Felt earned offline arrives on reconnect), a reboot with unacknowledged presses (resent by the new
BandLogic on the same storage, sequence numbers continue). Heap: ``gc.mem_alloc()`` after
``gc.collect()`` at checkpoints (MicroPython only; None under CPython).
"""

import gc

from hugband import board as boards
from hugband import logic
from hugband.store import MemBlob
from hugproto import frames, patterns

_STEP_MS = 5


class Rng:
    """Deterministic xorshift32 bytes (the band uses os.urandom; tests want repeatable days)."""

    def __init__(self, seed: int) -> None:
        self.s = (seed or 1) & 0xFFFFFFFF

    def __call__(self, n: int) -> bytes:
        out = bytearray(n)
        s = self.s
        for i in range(n):
            s ^= (s << 13) & 0xFFFFFFFF
            s ^= s >> 17
            s ^= (s << 5) & 0xFFFFFFFF
            out[i] = s & 0xFF
        self.s = s
        return bytes(out)


class FakePhone:
    def __init__(self, key: bytes, rng) -> None:
        self.key = key
        self.rng = rng
        self.conn = None
        self.state = b""
        self.session: frames.Session | None = None
        self.authed = False
        self.auto_ack = True
        self.set_time = True  # send SetTime right after AuthOk, as the app does
        self.epoch_base = 780000000  # the phone's clock: this + harness ms / 1000
        self.presses = {}  # seq -> (gesture, value): stored, deduplicated
        self.first_seq = -1
        self.last_press: frames.Press = None  # type: ignore[assignment]  # the latest Press received
        self.received = 0  # Press frames received, duplicates included
        self.felt = {}  # token -> how many Felt frames
        self.statuses = 0
        self.last_auth_ok = None
        self.band_pub = None  # hugproto.pairing.PubHalves while pairing
        self.band_pub_frames = 0

    def link_down(self) -> None:
        self.conn = None
        self.session = None
        self.authed = False

    def on_state(self, frame: bytes) -> None:
        self.state = frame

    def on_notify(self, h, frame: bytes) -> None:
        if self.band_pub is not None and self.session is None:
            from hugproto import pairing

            self.band_pub.add(*pairing.decode_pub(frame, frames.BAND_PUB))
            self.band_pub_frames += 1
            return
        assert self.session is not None, "band notified an unauthenticated phone"
        session = self.session
        msg = session.open(frame)  # raises if the band's frame is not authentic
        if isinstance(msg, frames.AuthOk):
            self.authed = True
            self.last_auth_ok = msg
            if self.set_time:
                h.write(session.seal(frames.SetTime(self.epoch_base + h.now // 1000, 0)))
        elif isinstance(msg, frames.Press):
            self.received += 1
            self.last_press = msg
            if self.first_seq < 0:
                self.first_seq = msg.seq
            if msg.seq not in self.presses:
                self.presses[msg.seq] = (msg.gesture, msg.value)
            if self.auto_ack:
                h.write(session.seal(frames.Ack(msg.seq)))
        elif isinstance(msg, frames.Felt):
            self.felt[msg.token] = self.felt.get(msg.token, 0) + 1
        elif isinstance(msg, frames.Status):
            self.statuses += 1

    def pair(self, h, check_open: bool = True) -> bool:
        """X25519 with the band (pure hugproto.x25519, as on the band); True when it took the key.

        The band's AuthOk follows at once: the session is open under the agreed key (``self.key``).
        """
        from hugproto import pairing, x25519

        st = frames.decode_state(self.state, None)  # the key is not shared yet: read unverified
        if check_open:
            assert st.flags & frames.FLAG_PAIRING_OPEN, "pairing window not open"
        secret = self.rng(32)
        pub = x25519.public_key(secret)
        self.band_pub = pairing.PubHalves()
        self.band_pub_frames = 0
        h.write(pairing.encode_pub(frames.PAIR_PUB, 0, pub))
        h.write(pairing.encode_pub(frames.PAIR_PUB, 1, pub))
        waited = 0
        while (
            self.band_pub_frames < 2 and waited < 3000 and h.phone is self
        ):  # the band's X25519 runs in its polls
            h.run(10)
            waited += 10
        halves, self.band_pub = self.band_pub, None
        if self.band_pub_frames < 2:
            return False
        band_pub = bytes(halves.pub)
        nonce = self.rng(frames.NONCE_LEN)
        key = pairing.band_key(x25519.x25519(secret, band_pub), st.nonce, nonce, pub, band_pub)
        self.key = key
        self.session = frames.Session(key, st.nonce, nonce, frames.PHONE)
        h.write(pairing.encode_confirm(key, st.nonce, nonce))
        self.code = frames.pairing_code(key)
        return self.authed

    def auth(self, h) -> None:
        st = frames.decode_state(self.state, self.key)
        auth, self.session = frames.phone_session(self.key, st.nonce, self.rng(frames.NONCE_LEN))
        h.write(auth)

    def send(self, h, msg) -> None:
        session = self.session
        assert session is not None, "not authenticated"
        h.write(session.seal(msg))


class Harness:
    """Plays the shell around one BandLogic."""

    def __init__(self, board: dict, storage, keystore, rng, now_ms: int = 1000, played=None) -> None:
        self.board = board
        self.storage = storage
        self.keystore = keystore
        self.played = played
        self.rng = rng
        self.now = now_ms
        self.phone: FakePhone = None  # type: ignore[assignment]
        self.conn = 0
        self.motor = 0
        self.motor_since = 0
        self.motor_on_ms = 0
        self.motor_runs = 0
        self.motor_peak = 0
        self.notifies = 0
        self.kicks = 0
        self.disconnects = 0
        self.adverts = 0
        self.advert = b""  # the payload advertised last
        self.addresses: list = []  # the random addresses the band took, in order
        self._addr_rng = Rng(0xADD2)  # its own stream: the phone's nonces stay as they were
        self.factory_reset = False
        self.deep_sleep = False
        self.boot()

    def boot(self) -> None:
        self.core = logic.BandLogic(self.board, self.storage, self.rng, self.keystore, self.now, self.played)
        self.drain()

    # the link
    def connect(self, phone, addr=None) -> None:
        self.conn += 1
        self.phone = phone
        phone.conn = self.conn
        self.core.on_connect(self.conn, self.now, addr)
        self.drain()

    def disconnect(self) -> None:
        if self.phone is not None:
            conn = self.phone.conn
            self.phone.link_down()
            self.phone = None  # type: ignore[assignment]
            self.core.on_disconnect(conn, self.now)
            self.drain()

    def write(self, data: bytes) -> None:
        self.core.on_command(self.phone.conn, data, self.now)
        self.drain()  # the shell runs after every BLE event (nested drains keep FIFO order)

    # time and the button
    def run(self, ms: int) -> None:
        end = self.now + ms
        while self.now < end:
            self.now += _STEP_MS
            self.core.poll(self.now)
            self.drain()

    def hold(self, ms: int) -> None:
        self.core.on_button(True, self.now)
        self.run(ms)
        self.core.on_button(False, self.now)

    def taps(self, n: int) -> None:
        for _ in range(n):
            self.hold(80)
            self.run(150)
        self.run(500)

    def squeeze(self, ms: int) -> None:
        self.hold(ms)
        self.run(100)

    def drain(self) -> None:
        core = self.core
        a = core.pop_action()
        while a is not None:
            kind = a[0]
            if kind == logic.A_NOTIFY:
                self.notifies += 1
                if self.phone is not None and a[1] == self.phone.conn:
                    self.phone.on_notify(self, a[2])
            elif kind == logic.A_STATE:
                if self.phone is not None:
                    self.phone.on_state(a[1])
            elif kind == logic.A_MOTOR:
                self._motor(a[1])
            elif kind == logic.A_DISCONNECT:
                self.disconnects += 1
                if self.phone is not None and a[1] == self.phone.conn:
                    self.disconnect()
                else:
                    core.on_disconnect(a[1], self.now)
            elif kind == logic.A_ADVERTISE:
                self.adverts += 1
                self.advert = a[2]
            elif kind == logic.A_ADDRESS:
                self.addresses.append(self._addr_rng(6))
                core.on_address(self.addresses[-1], self.now)
            elif kind == logic.A_PLAYING:
                core.save_played(a[1])
            elif kind == logic.A_FACTORY_RESET:
                self.factory_reset = True
            elif kind == logic.A_DEEP_SLEEP:
                self.deep_sleep = True
            a = core.pop_action()

    def _motor(self, duty: int) -> None:
        if duty > self.motor_peak:
            self.motor_peak = duty
        if duty and not self.motor:
            self.motor_runs += 1
            self.motor_since = self.now
            if duty == self.core.player.max_duty:
                self.kicks += 1
        elif self.motor and not duty:
            self.motor_on_ms += self.now - self.motor_since
        self.motor = duty


def expected_motor(plays, back_to_back: bool = True) -> tuple:
    """(runs, on_ms) that (pattern, signature, intensity, repeat) plays should give, back to back or
    each from rest."""
    buf = bytearray(patterns.BUFFER_SIZE)
    runs = 0
    on_ms = 0
    last = 0
    for p in plays:
        n = patterns.render(p[0], p[1], p[2], p[3], buf)
        if not back_to_back:
            last = 0
        for i in range(n):
            level = buf[2 * i]
            if level:
                on_ms += buf[2 * i + 1] * patterns.STEP_MS
                if not last:
                    runs += 1
            last = level
    return runs, on_ms


class _Heap:
    def __init__(self) -> None:
        self.ok = hasattr(gc, "mem_alloc")
        self.high = 0
        self.points = 0

    def check(self) -> None:
        gc.collect()
        if self.ok:
            used = gc.mem_alloc()  # type: ignore[attr-defined]
            if used > self.high:
                self.high = used
            self.points += 1

    def check_base(self) -> int:
        gc.collect()
        return gc.mem_alloc() if self.ok else -1  # type: ignore[attr-defined]


def _hug(h, phone, token: int, signature: int, intensity: int, wait: bool = True):
    play = (patterns.HUG, signature, intensity, 1)
    phone.send(h, frames.Play(patterns.HUG, signature, intensity, 1, token))
    if wait:
        h.run(patterns.duration_ms(*_render(play)) + 300)
    return play


def _render(play):
    buf = bytearray(patterns.BUFFER_SIZE)
    return buf, patterns.render(play[0], play[1], play[2], play[3], buf)


def _check_motor(h, plays, before) -> None:
    runs, on_ms = expected_motor(plays, False)
    got_runs = h.motor_runs - before[0]
    got_on = h.motor_on_ms - before[1]
    assert got_runs == runs, "motor runs %d, expected %d" % (got_runs, runs)
    assert abs(got_on - on_ms) <= runs * _STEP_MS, "motor on %d ms, expected %d" % (got_on, on_ms)
    assert h.kicks - before[2] == runs, "every run starts with the overdrive kick"


class Day:
    """The day as numbered steps, so a driver can return to its top level between them.

    ``len(day)`` steps; ``day.step(i)`` runs step i (in order). Checkpoints for the heap figure are
    taken between steps. ``run_day`` runs them all in one go.
    """

    def __init__(self, board_name: str = "xiao_esp32c3") -> None:
        self.board = boards.load(board_name)
        self.rng = Rng(20240917)
        self.storage = MemBlob()
        self.keystore = MemBlob()
        self.h: Harness = None  # type: ignore[assignment]  # set by the boot step
        self.phone: FakePhone = None  # type: ignore[assignment]  # set by the pair step
        self.sent = []
        self.plays = []
        self.token = 100
        self.mark = None
        self.last_seq = 0
        self.rejected_before_reboot = 0
        self.result: dict = {}
        plan = ["boot", "pair"]
        for _ in range(20):
            plan.append("press")
        plan.append("check_presses")
        for _ in range(16):
            plan.append("hug")
        plan += [
            "check_hugs",
            "burst",
            "offline_felt",
            "check_felt",
            "unacked_then_reboot",
            "resend",
            "stranger",
            "summary",
        ]
        self.plan = plan
        self.done = 0

    def __len__(self) -> int:
        return len(self.plan)

    def step(self, i: int) -> None:
        assert i == self.done, "steps run in order"
        getattr(self, self.plan[i])()
        self.done += 1

    # -- the steps ------------------------------------------------------------------------------
    def boot(self) -> None:
        self.h = Harness(self.board, self.storage, self.keystore, self.rng)
        assert not self.h.core.paired

    def pair(self) -> None:
        h = self.h
        core = h.core
        core.on_button(True, h.now)
        h.run(5100)
        assert core.pairing_open, "5 s hold opens the pairing window"
        core.on_button(False, h.now)
        h.run(2000)
        phone = FakePhone(b"0123456789abcdef", self.rng)
        self.phone = phone
        h.connect(phone)
        assert phone.pair(h)
        assert core.paired
        assert not core.pairing_open
        assert phone.authed
        assert core.authenticated
        h.run(2500)  # the "paired" buzz (up to 2.3 s)
        assert len(core.outbox) == 0, "the pairing hold is not a press"

    def press(self) -> None:
        """Press number len(sent): taps and squeezes; 10..13 made while disconnected."""
        h = self.h
        i = len(self.sent)
        if i == 10:
            h.disconnect()
            h.run(1000)
        if i == 14:
            h.connect(self.phone)
            self.phone.auth(h)
            h.run(50)
        if i % 3 == 2:
            ms = 700 + i * 100
            h.squeeze(ms)
            self.sent.append((frames.GESTURE_SQUEEZE, ms))
        else:
            n = 1 + i % 5
            h.taps(n)
            self.sent.append((frames.GESTURE_TAP, n))

    def check_presses(self) -> None:
        h = self.h
        phone = self.phone
        h.run(200)
        assert len(phone.presses) == 20, "phone stored %d presses" % len(phone.presses)
        assert phone.received == 20, "each press sent exactly once (%d)" % phone.received
        base = phone.first_seq
        for i in range(20):
            gesture, value = phone.presses[(base + i) & 0xFFFF]  # consecutive sequence numbers
            assert gesture == self.sent[i][0], "press %d gesture" % i
            if gesture == frames.GESTURE_TAP:
                want = self.sent[i][1]
                assert value == want, "press %d: %d taps, phone got %d" % (i, want, value)
            else:
                assert 64 <= value <= 255
        assert len(h.core.outbox) == 0, "all acknowledged"
        self.last_seq = (base + 19) & 0xFFFF

    def hug(self) -> None:
        h = self.h
        if self.mark is None:
            self.mark = (h.motor_runs, h.motor_on_ms, h.kicks)
        i = len(self.plays)
        self.plays.append(_hug(h, self.phone, self.token, i % patterns.NUM_SIGNATURES, 120 + i * 8))
        self.token += 1

    def check_hugs(self) -> None:
        _check_motor(self.h, self.plays, self.mark)

    def burst(self) -> None:
        h = self.h
        before = (h.motor_runs, h.motor_on_ms, h.kicks)
        burst = []
        for _ in range(3):  # queued behind each other
            burst.append(_hug(h, self.phone, self.token, 1, 200, wait=False))
            self.token += 1
        h.run(8000)
        runs, on_ms = expected_motor(burst)
        assert h.motor_runs - before[0] == runs
        assert abs(h.motor_on_ms - before[1] - on_ms) <= runs * _STEP_MS

    def offline_felt(self) -> None:
        """A hug whose Felt is earned while the phone is away arrives on reconnect."""
        h = self.h
        phone = self.phone
        _hug(h, phone, self.token, 2, 255, wait=False)
        h.run(100)
        h.disconnect()
        h.run(4000)
        assert phone.felt.get(self.token, 0) == 0
        h.connect(phone)
        phone.auth(h)
        h.run(100)
        self.token += 1

    def check_felt(self) -> None:
        phone = self.phone
        for t in range(100, self.token):
            assert phone.felt.get(t, 0) == 1, "token %d felt %d times" % (t, phone.felt.get(t, 0))
        assert len(phone.felt) == 20
        assert self.h.core.player.dropped == 0

    def unacked_then_reboot(self) -> None:
        h = self.h
        phone = self.phone
        phone.auto_ack = False
        h.taps(2)
        h.squeeze(1500)
        h.disconnect()
        h.taps(3)
        assert len(h.core.outbox) == 3
        assert len(phone.presses) == 22
        assert ((self.last_seq + 2) & 0xFFFF) in phone.presses
        self.rejected_before_reboot = h.core.rejected
        h.now += 123457  # ticks after a reboot mean nothing; any value works
        h.boot()  # a new BandLogic on the same storage
        assert h.core.paired, "the key survives the reboot"
        assert len(h.core.outbox) == 3, "the presses survive the reboot"

    def resend(self) -> None:
        h = self.h
        phone = self.phone
        phone.auto_ack = True
        h.connect(phone)
        phone.auth(h)
        h.run(100)
        assert len(h.core.outbox) == 0
        assert len(phone.presses) == 23
        assert ((self.last_seq + 3) & 0xFFFF) in phone.presses
        assert phone.last_press.age_s >= 123, "age across the reboot from the wall clock"
        h.taps(1)
        h.run(50)
        assert ((self.last_seq + 4) & 0xFFFF) in phone.presses, "sequence numbers continue after the reboot"

    def stranger(self) -> None:
        """A forged Play on the authenticated link never buzzes; it is counted."""
        h = self.h
        runs = h.motor_runs
        h.write(b"\x32" + bytes(14))
        h.run(2000)
        assert h.motor_runs == runs, "no buzz"
        assert h.core.rejected == 1
        h.disconnect()

    def summary(self) -> None:
        h = self.h
        phone = self.phone
        self.result = {
            "presses": len(phone.presses),
            "press_frames": phone.received,
            "hugs_felt": len(phone.felt),
            "motor_runs": h.motor_runs,
            "motor_on_ms": h.motor_on_ms,
            "rejected_before_reboot": self.rejected_before_reboot,
            "sim_ms": h.now,
        }


def summary_line(result: dict, heap_high: int = -1, heap_base: int = -1) -> str:
    heap = "n/a (CPython)"
    if heap_high >= 0:
        above = heap_high - heap_base
        heap = "%d bytes (%d above the %d bytes after imports)" % (heap_high, above, heap_base)
    return "DAY OK presses=%d hugs_felt=%d motor_runs=%d motor_on_ms=%d sim_s=%d heap_high_water=%s" % (
        result["presses"],
        result["hugs_felt"],
        result["motor_runs"],
        result["motor_on_ms"],
        result["sim_ms"] // 1000,
        heap,
    )


def run_day(board_name: str = "xiao_esp32c3") -> dict:
    """Run the whole day in one call; return the result dict and print the summary line.

    The heap figure here is ``gc.mem_alloc()`` after ``gc.collect()`` between steps: right on a band;
    under the WebAssembly build gc.collect() only takes effect back at the JavaScript top level, so
    tests/firmware/day_mp.mjs drives the steps one top-level call at a time for that figure.
    """
    heap = _Heap()
    heap.check()
    day = Day(board_name)
    base = heap.check_base()
    for i in range(len(day)):
        day.step(i)
        heap.check()
    result = day.result
    result["heap_high_water"] = heap.high if heap.ok else None
    result["heap_base"] = base if heap.ok else None
    print(summary_line(result, heap.high if heap.ok else -1, base))
    return result
