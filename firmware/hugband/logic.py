"""BandLogic: the whole band logic as one pure object. No hardware, no BLE module, no clock.

The shell (hugband.app / ble) owns the radio and the pins. It feeds events in and carries actions out:

    core = BandLogic(board, FileBlob("outbox.bin"), os.urandom, FileBlob("band.key"), time.ticks_ms())
    every loop (5-10 ms while core.busy, slower when idle):
        core.on_button(pin_pressed, now)          # or core.on_touch(touchpad.read(), now)
        core.poll(now)
        a = core.pop_action()
        while a is not None: perform(a); a = core.pop_action()
    from the (queued, not IRQ-context) BLE events:
        core.on_connect(conn, now, addr) / core.on_disconnect(conn, now) / core.on_command(conn, data, now)
    every second: check that ``core.link`` (if not None) is still a link of the BLE stack, report it
        with on_disconnect if not, and disconnect it again if ``core.link_dropped``
    every ~60 s: core.on_battery(millivolts, now)

Actions are tuples whose first item is one of the A_* kinds:
    (A_NOTIFY, conn, frame)        notify ``frame`` on the event characteristic to ``conn``
    (A_STATE, frame, 0)            set the state characteristic value (and notify it if subscribed)
    (A_MOTOR, duty, 0)             motor duty 0..1023 (DRV2605L boards: write haptics.drv2605_rtp(duty))
    (A_LED, colour, 0)             LED colour 0xRRGGBB, 0 = off (pin LEDs: on when non-zero)
    (A_DISCONNECT, conn, 0)        drop this connection
    (A_ADVERTISE, interval_ms, payload)  (re)start advertising with this payload; interval 0 = stop
    (A_ADDRESS, 0, 0)              stop advertising, take a fresh random private address and call
                                   core.on_address(address, now): the band advertises again from it
    (A_BATTERY, percent, 0)        battery level characteristic value
    (A_CPU, mhz, 0)                set machine.freq(mhz * 1_000_000)
    (A_DEEP_SLEEP, 0, 0)           arm wake on the heart and machine.deepsleep()
    (A_FACTORY_RESET, 0, 0)        storage is already wiped: machine.reset()
    (A_PLAYING, token, 0)          the motor now plays Play ``token``: call core.save_played(token)
                                   (queued behind the A_MOTOR that starts it, so the token is kept in
                                   flash only once the motor runs: a reboot in between plays it again,
                                   never marks it felt unplayed)
Untrackable: the band never advertises from its public address. Its first advert and every
``address_rotate_s`` (board file) after it come from a fresh random address (A_ADDRESS), with an
identity token computed for that address (``hugproto.adv``), so address and token change together;
not while connected (a link keeps its address) or while the pairing window is open (the phone that
saw "ready to pair" connects to that address), and at once after the band key changed.
A press waiting to be sent shows only to holders of the identity key (owners, an enrolled hub): it is
a bit inside the token, which also covers a roll the band steps at most once per ``_ADV_REFRESH_MS``
beat (the bit is taken then; adverts in between repeat the roll's token), so the token changes
whether or not a press waits; the band takes a new address before its roll comes round. A press
does not speed advertising up (a scanner would see that).
The action queue holds ``_ACTIONS`` entries; the shell drains it after every call. If it is full the
newest action is dropped and ``actions_dropped`` counts it (presses stay in the outbox and are resent).

Security rules enforced here:
- A band key is agreed (X25519, hugproto.pairing) only inside the pairing window, opened by the 5 s
  hold, lasting ``_PAIRING_WINDOW_MS`` (60 s) and closed by the first completed pairing: any other
  attempt in that window is refused, and for ``_JUST_PAIRED_MS`` the band's flags say it was just
  paired (a phone that lost the race tells its owner so). A completed pairing buzzes a rising wave
  and then ``frames.pairing_code(key)`` pulses (2..5, the phone shows the same count) and blinks
  white; Identify buzzes the same, so a parent can check again which band holds the phone's key.
- Nothing but AUTH and the pairing frames is accepted before AUTH succeeds; an unpaired band
  refuses AUTH.
- Every later frame must open under this connection's session (MAC, rising counter, well-formed).
- A rejected frame changes nothing and never buzzes; ``rejected`` counts it; a connection's 3rd bad
  frame disconnects it. Strangers cost the owner little:
  - a connection not authenticated in its window is dropped. The window is ``_AUTH_TIMEOUT_MS``
    (1 s; the owner's phone sends Auth a few ms after connecting in the airspace), or four times the
    owner's last Auth delay if that is longer (learnt from good Auths, up to ``_AUTH_SLOW_MS``, which
    is also the window while pairing, and after boot until the first good Auth or pairing). A
    central dropped so that comes back from the same address gets a second chance: twice its
    window, then four times, up to ``_AUTH_SLOW_MS`` (the last ``_LATE_SLOTS`` addresses are kept;
    one second chance every ``_SECOND_EVERY_MS`` at most, so strangers gain little from it): a slow
    phone still gets in, whatever strangers do. The address of the last good Auth or pairing (the
    owner's phone, whose own load can delay its Auth by seconds) always gets ``_AUTH_SLOW_MS``; a
    stranger copying that address gets as much;
  - a failed Auth drops the connection at once (one guess per connection), and the band stops
    advertising for a pause that doubles with each failure in a row (``_PAUSE_MS`` .. ``_PAUSE_MAX_MS``)
    until an Auth succeeds: guesses come at most about twice a second, whatever their addresses.
- Events (AuthOk, Press, Felt, Status) are sent only on an authenticated connection. One connection
  at a time: another central connecting meanwhile is disconnected at once, and so is one that writes
  while the band never heard it connect (its connect IRQ was lost).
- With no link the band advertises, and says so again every ``_ADV_REFRESH_MS``: a connect the stack
  made but never reported (it stops advertising) cannot leave the band silent.
"""

import struct

from hugband import button, led, power
from hugband.haptics import Player
from hugband.outbox import Outbox, seq_after
from hugband.ticks import add, diff
from hugproto import adv, frames, patterns
from hugproto.compat import const
from hugproto.errors import ProtocolError
from hugproto.mac import Hmac

A_NOTIFY = const(1)
A_STATE = const(2)
A_MOTOR = const(3)
A_LED = const(4)
A_DISCONNECT = const(5)
A_ADVERTISE = const(6)
A_BATTERY = const(7)
A_CPU = const(8)
A_DEEP_SLEEP = const(9)
A_FACTORY_RESET = const(10)
A_PLAYING = const(11)
A_ADDRESS = const(12)
ACTION_NAMES = (
    "",
    "notify",
    "state",
    "motor",
    "led",
    "disconnect",
    "advertise",
    "battery",
    "cpu",
    "deep_sleep",
    "factory_reset",
    "playing",
    "address",
)

FIRMWARE = const(1)

_ACTIONS = const(32)
_PAIRING_WINDOW_MS = const(60000)
_JUST_PAIRED_MS = const(60000)
_PAIRED_BLINK_MS = const(3000)
_LADDER_STEPS = const(4)  # X25519 ladder steps per poll while pairing (~16 ms on a C3 at 160 MHz)
_PAIRING_CPU_MHZ = const(160)  # the clock while the pairing window is open (X25519 takes ~1 s)
_PAIRING_AUTH_TIMEOUT_MS = const(10000)  # once its whole public key is in, a pairing may take this long
_AUTH_TIMEOUT_MS = const(1000)
_AUTH_SLOW_MS = const(4000)
_SECOND_EVERY_MS = const(30000)
_LATE_SLOTS = const(8)
_LATE_WAITING = const(0x80)  # timed out: its next connection gets a second chance; low bits: chances had
_ADDR_LEN = const(6)
_PAUSE_MS = const(125)
_PAUSE_MAX_MS = const(500)
_ADV_REFRESH_MS = const(3000)
_MAX_BAD = const(3)
_RESEND_MS = const(10000)
_SEND_BURST = const(4)
_FELT_QUEUE = const(8)
_RECENT_TOKENS = const(16)
_TOKEN_QUEUED = const(1)
_TOKEN_PLAYED = const(2)
_TOKEN_INTERNAL = const(0x10000)  # player tokens >= this are the band's own patterns, not Plays
_TOKEN_RESET = const(0x10001)
_CLOCK_WAIT_MS = const(250)  # after AUTH, wait this long for SetTime before sending presses

# key store: key, motor_max, led, low_battery_pct, idle_sleep_min, then 4 bytes of SHA-256
_KEY_FMT = "<16sBBBH"
_KEY_BODY = const(21)
_KEY_FILE = const(25)


class _Conn:
    def __init__(self, handle, nonce: bytes, now_ms: int, addr, window_ms: int) -> None:
        self.handle = handle
        self.nonce = nonce
        self.addr = addr  # the central's address (bytes) or None
        self.t0 = now_ms
        self.window_ms = window_ms  # to authenticate in
        self.session: "frames.Session | None" = None
        self.dead = False  # we asked the shell to disconnect it
        self.bad = 0
        self.sent_upto = 0  # last outbox seq sent on this connection
        self.progress_ms = now_ms  # last ack or first send of a press (resend timer)
        self.send_after = now_ms  # presses wait until then (or until SetTime) after AUTH
        self.pairing = None  # hugproto.pairing.BandPairing while this connection pairs

    def start_pairing(self, secret: bytes):
        from hugproto.pairing import BandPairing

        self.pairing = p = BandPairing(secret)
        return p


class BandLogic:
    def __init__(self, board: dict, storage, random_bytes, keystore, now_ms: int, played=None) -> None:
        self.board = board
        self._storage = storage
        self._played = played  # optional blob: the Play tokens played lately survive a reboot
        self._started = -1  # token of the pattern the player was last seen playing
        self._random = random_bytes
        self._keystore = keystore
        # counters (reported in Status and by the benchmarks)
        self.rejected = 0
        self.actions_dropped = 0
        self.storage_errors = 0
        self.felt_lost = 0
        self.presses = 0
        self.auth_failures = 0  # wrong Auth tags (guesses), each dropped its connection
        self.auth_timeouts = 0
        # parts
        self.gestures = button.Gestures()
        self.touch = None
        if board.get("touch_pin") is not None:
            self.touch = button.TouchFilter(board["touch_threshold"], board.get("touch_rises", True))
        self.player = Player()
        self.motor_max = 255  # SetConfig CONFIG_MOTOR_MAX, 1..255 of full duty
        self.outbox = Outbox()
        self.led = led.LedPolicy(now_ms)
        self.battery = power.BatteryMonitor()
        self.policy = power.PowerPolicy(board.get("cpu_mhz", 80), now_ms)
        self.backoff = power.AdvertisingBackoff(now_ms)
        self.meter = power.EnergyMeter(now_ms, self.policy.cpu_mhz)
        self._steps = bytearray(patterns.BUFFER_SIZE)
        self._q: list = [None] * _ACTIONS
        self._qh = 0
        self._qn = 0
        self._felt = [0] * _FELT_QUEUE
        self._tokens = [-1] * _RECENT_TOKENS  # Play tokens seen lately, so a resent Play buzzes once
        self._token_flags = bytearray(_RECENT_TOKENS)
        self._tokens_next = 0
        self._felt_h = 0
        self._felt_n = 0
        self._conn = None
        self._key = None
        self._pairing_until = now_ms
        self._pairing = False
        self._just_paired = False
        self._just_paired_until = now_ms
        self._epoch_s = 0  # wall clock (s since 2000) at _epoch_ms; 0 = never set
        self._epoch_ms = 0
        self.tz_minutes = 0
        self._resetting = False
        self._asleep = False
        self._fails = 0  # failed Auths since the last good one
        self._adv_after = now_ms  # no advertising before this (the pause after a failed Auth)
        self._adv_at = now_ms  # when advertising was last (re)started
        self._late = bytearray(_LATE_SLOTS * _ADDR_LEN)
        self._late_state = bytearray(_LATE_SLOTS)
        self._late_next = 0
        # learnt from the owner's Auth delays; until its phone has authenticated once since boot its
        # delay is unknown, and a loaded phone must not be locked out: the longest window
        self._auth_window = _AUTH_SLOW_MS
        self._auth_learnt = False
        self._second_at = add(now_ms, -_SECOND_EVERY_MS)  # the last second chance
        self._owner_addr = b""  # the address of the last good Auth or pairing
        self._flags_sent = -1
        self._battery_sent = -1
        self._rotate_ms = board.get("address_rotate_s", 900) * 1000
        self._rotate_at = now_ms  # the first advert comes from a fresh address
        self._addr_pending = False  # A_ADDRESS queued: adverts wait for on_address
        self._address = b""  # the address advertised from (its token is made per advert)
        self._roll = 0
        self._roll_first = 0  # the roll of the address's first advert: it must not come round
        self._stepped = False  # an advert went out from this address: later ones step the roll
        self._roll_at = 0  # when the roll last stepped: at most once per _ADV_REFRESH_MS
        self._waiting = 0  # the waiting bit of this roll, taken when it stepped
        # boot
        self._load_key()
        self._key_changed(now_ms)  # sets self._ident
        self._load_played()
        data = None
        try:
            data = storage.read()
        except OSError:
            self.storage_errors += 1
        self.outbox.from_bytes(data, self._random_seq())
        self._push(A_CPU, self.policy.cpu_mhz, 0)
        self._advertise(now_ms)
        self.meter.set_state(power.ADVERTISING, now_ms)

    # ------------------------------------------------------------------ public state
    @property
    def paired(self) -> bool:
        return self._key is not None

    @property
    def pairing_open(self) -> bool:
        return self._pairing

    @property
    def authenticated(self) -> bool:
        return self._conn is not None and self._conn.session is not None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def link(self):
        """The connection handle the band holds (to check against the BLE stack), or None."""
        return None if self._conn is None else self._conn.handle

    @property
    def link_dropped(self) -> bool:
        """The band asked to drop its link and still holds it: ask again."""
        return self._conn is not None and self._conn.dead

    @property
    def busy(self) -> bool:
        """Something time-critical is going on: poll every 5-10 ms."""
        return self.player.busy or not self.gestures.idle or self._pairing or self._conn is not None

    @property
    def flags(self) -> int:
        f = 0
        if self._key is not None:
            f |= frames.FLAG_PAIRED
        if self._pairing:
            f |= frames.FLAG_PAIRING_OPEN
        if self._just_paired:
            f |= frames.FLAG_JUST_PAIRED
        if self.battery.low:
            f |= frames.FLAG_LOW_BATTERY
        return f

    def epoch_now(self, now_ms: int) -> int:
        """Wall clock in seconds since 2000-01-01 UTC, or 0 when SetTime never came."""
        if not self._epoch_s:
            return 0
        return self._epoch_s + diff(now_ms, self._epoch_ms) // 1000

    # ------------------------------------------------------------------ actions
    def pop_action(self):
        if not self._qn:
            return None
        a = self._q[self._qh]
        self._q[self._qh] = None
        self._qh = (self._qh + 1) % _ACTIONS
        self._qn -= 1
        return a

    def _push(self, kind: int, a, b) -> None:
        if self._qn >= _ACTIONS:
            self.actions_dropped += 1
            return
        self._q[(self._qh + self._qn) % _ACTIONS] = (kind, a, b)
        self._qn += 1

    # ------------------------------------------------------------------ inputs
    def on_button(self, pressed: bool, now_ms: int) -> None:
        self.gestures.update(pressed, now_ms)

    def on_touch(self, reading: int, now_ms: int) -> None:
        if self.touch is not None:
            self.gestures.update(self.touch.update(reading), now_ms)

    def on_battery(self, mv: int, now_ms: int) -> None:
        if self.battery.update(mv):
            self._play_own(patterns.LOW_BATTERY, now_ms)
            self._send_status()
        self.led.low_battery = self.battery.low
        if self.battery.percent != self._battery_sent:
            self._battery_sent = self.battery.percent
            self._push(A_BATTERY, self.battery.percent, 0)
        self._flags_changed(now_ms)

    def on_address(self, address, now_ms: int) -> None:
        """The shell took a new random address (A_ADDRESS): advertise from it with its token."""
        self._addr_pending = False
        self._rotate_at = add(now_ms, self._rotate_ms)
        self._address = bytes(address)
        self._roll = self._roll_first = self._random(1)[0] % adv.ROLLS
        self._stepped = False
        self._roll_at = now_ms
        if self._conn is None and not self._asleep:
            self._advertise(now_ms)

    def on_connect(self, conn, now_ms: int, addr=None) -> None:
        """A central connected; ``addr`` is its address (6 bytes), if the stack told it."""
        self.policy.activity(now_ms)
        if self._conn is not None:
            self.rejected += 1
            self._push(A_DISCONNECT, conn, 0)
            return
        addr = None if addr is None else bytes(addr)
        owner = addr is not None and addr == self._owner_addr  # the phone of the last good Auth
        window = _AUTH_SLOW_MS if self._pairing or owner else self._auth_window
        i = self._late_slot(addr)
        waiting = i >= 0 and self._late_state[i] & _LATE_WAITING
        if waiting and diff(now_ms, self._second_at) >= _SECOND_EVERY_MS:
            level = (self._late_state[i] & 3) + 1 if self._late_state[i] & 3 < 2 else 2
            self._late_state[i] = level
            self._second_at = now_ms
            window = window << level if window << level < _AUTH_SLOW_MS else _AUTH_SLOW_MS
        c = _Conn(conn, bytes(self._random(frames.NONCE_LEN)), now_ms, addr, window)
        self._conn = c
        self.led.connected = True
        self.meter.set_state(power.CONNECTED, now_ms)
        self._push(A_STATE, self._state_frame(c), 0)
        self._flags_sent = self.flags

    def on_disconnect(self, conn, now_ms: int) -> None:
        c = self._conn
        if c is None or c.handle != conn:
            return
        self._conn = None
        if c.pairing is not None:
            c.pairing = None
            _unload_pairing()
        self.led.connected = False
        self.policy.activity(now_ms)
        self.backoff.kick(now_ms)
        if diff(now_ms, self._adv_after) >= 0:
            self._advertise(now_ms)
        else:
            self._adv_at = add(now_ms, -_ADV_REFRESH_MS)  # poll starts it once the pause is over
        self.meter.set_state(power.ADVERTISING, now_ms)

    def on_command(self, conn, data, now_ms: int) -> None:
        """Bytes written to the Hug command characteristic by ``conn``."""
        c = self._conn
        if c is None or c.handle != conn or c.dead:
            self.rejected += 1
            if c is None or c.handle != conn:  # a link the band never heard connect: drop it
                self._push(A_DISCONNECT, conn, 0)
            return
        data = bytes(data)
        try:
            kind = frames.frame_kind(data)
            if kind == frames.AUTH:
                self._on_auth(c, data, now_ms)
            elif kind == frames.PAIR_PUB:
                self._on_pair_pub(c, data)
            elif kind == frames.PAIR_CONFIRM:
                self._on_pair_confirm(c, data, now_ms)
            elif c.session is None:
                raise ProtocolError("not authenticated")
            else:
                self._on_message(c, c.session.open(data), now_ms)
        except ProtocolError:
            self._bad(c)

    # ------------------------------------------------------------------ poll
    def poll(self, now_ms: int) -> None:
        if self._resetting and not self.player.busy:
            self._resetting = False  # the player was stopped by something: reset anyway
            self._factory_reset()
        g = self.gestures
        g.poll(now_ms)
        ev = g.get()
        while ev is not None:
            self._on_gesture(ev, now_ms)
            ev = g.get()
        duty = self.player.poll(now_ms)
        if duty is not None:
            self._push(A_MOTOR, duty, 0)
            self.meter.set_motor(duty > 0, now_ms)
        token = self.player.pop_done()
        while token is not None:
            self._on_played(token, now_ms)
            token = self.player.pop_done()
        token = self.player.playing_token
        if token != self._started:
            self._started = token
            if 0 <= token < _TOKEN_INTERNAL:
                self._push(A_PLAYING, token, 0)  # once it has started, a reboot must not play it again
        c = self._conn
        if self._pairing and diff(now_ms, self._pairing_until) >= 0:
            self._window(False, now_ms)
            if c is not None and c.pairing is not None:
                c.pairing = None
                _unload_pairing()
        if self._just_paired and diff(now_ms, self._just_paired_until) >= 0:
            self._just_paired = False
        if c is not None:
            if not c.dead and c.pairing is not None and c.pairing.busy:
                self._work_pairing(c)
            if c.dead:
                pass
            elif c.session is None:
                keyed = c.pairing is not None and c.pairing.keyed
                if diff(now_ms, c.t0) >= (_PAIRING_AUTH_TIMEOUT_MS if keyed else c.window_ms):
                    self.rejected += 1
                    self.auth_timeouts += 1
                    self._remember_late(c.addr)
                    self._drop(c)
            elif self._epoch_s or diff(now_ms, c.send_after) >= 0:
                self._send_presses(c, now_ms)
        elif not self._asleep and diff(now_ms, self._adv_after) >= 0:
            interval = self.backoff.poll(now_ms)
            refresh = diff(now_ms, self._adv_at) >= _ADV_REFRESH_MS
            if interval is not None or refresh or self._rotation_due(now_ms):
                self._push_advert(self.backoff.interval_ms, now_ms)
        self._flags_changed(now_ms)
        colour = self.led.poll(now_ms)
        if colour is not None:
            self._push(A_LED, colour, 0)
            self.meter.set_led(colour != 0, now_ms)
        self.meter.update(now_ms)
        if not self._asleep and self.policy.should_deep_sleep(now_ms, self.paired, c is not None, self.busy):
            self._asleep = True
            self.meter.set_state(power.DEEP_SLEEP, now_ms)
            self._push(A_ADVERTISE, 0, b"")
            self._push(A_DEEP_SLEEP, 0, 0)

    # ------------------------------------------------------------------ commands
    def _bad(self, c: _Conn) -> None:
        self.rejected += 1
        c.bad += 1
        if c.bad >= _MAX_BAD:
            self._drop(c)

    def _drop(self, c: _Conn) -> None:
        """Ask the shell to disconnect; stop treating it as ours right away."""
        self._push(A_DISCONNECT, c.handle, 0)
        c.session = None
        c.dead = True

    def _on_auth(self, c: _Conn, data: bytes, now_ms: int) -> None:
        if self._key is None:
            raise ProtocolError("unpaired band refuses Auth")
        if c.session is not None:
            raise ProtocolError("already authenticated")
        try:
            session = frames.band_session(self._key, c.nonce, data)
        except ProtocolError:
            self._auth_failed(c, now_ms)
            return
        self._fails = 0
        if c.addr is not None:
            self._owner_addr = c.addr
        i = self._late_slot(c.addr)
        if i >= 0:
            self._late_state[i] = 0
        self._learn_auth_delay(diff(now_ms, c.t0))
        self._start_session(c, session, now_ms)

    def _start_session(self, c: _Conn, session, now_ms: int) -> None:
        c.session = session
        c.progress_ms = now_ms
        # presses carry their age; after a reboot that needs the wall clock, which the phone sends
        # (SetTime) right after AuthOk: give it a moment before the first Press goes out
        c.send_after = now_ms if self._epoch_s else add(now_ms, _CLOCK_WAIT_MS)
        n = len(self.outbox)
        c.sent_upto = (self.outbox.next_seq - 1 - n) & 0xFFFF
        self._notify(c, frames.AuthOk(self.flags, self.battery.percent, n if n < 255 else 255))
        if self.outbox.dropped or self.rejected:
            self._send_status()
        while self._felt_n:
            token = self._felt[self._felt_h]
            self._felt_h = (self._felt_h + 1) % _FELT_QUEUE
            self._felt_n -= 1
            self._notify(c, frames.Felt(token))
        if self._epoch_s:
            self._send_presses(c, now_ms)

    def _auth_failed(self, c: _Conn, now_ms: int) -> None:
        """A wrong guess: no second one on this link, and no new link for a while."""
        self.rejected += 1
        self.auth_failures += 1
        self._drop(c)
        pause = _PAUSE_MS << (self._fails if self._fails < 8 else 8)
        self._fails += 1
        self._adv_after = add(now_ms, pause if pause < _PAUSE_MAX_MS else _PAUSE_MAX_MS)

    def _learn_auth_delay(self, ms: int) -> None:
        """The window follows the owner's phone: four times its delay, slowly down, at once up (the
        first good Auth since boot sets it)."""
        w = 4 * ms
        if w < self._auth_window and self._auth_learnt:
            w = (self._auth_window + w) // 2
        self._auth_learnt = True
        if w < _AUTH_TIMEOUT_MS:
            w = _AUTH_TIMEOUT_MS
        self._auth_window = w if w < _AUTH_SLOW_MS else _AUTH_SLOW_MS

    def _late_slot(self, addr) -> int:
        if addr is None:
            return -1
        for i in range(_LATE_SLOTS):
            a = i * _ADDR_LEN
            if self._late_state[i] and self._late[a : a + _ADDR_LEN] == addr:
                return i
        return -1

    def _remember_late(self, addr) -> None:
        """A central too slow to authenticate in its window gets a longer one next time."""
        if addr is None:
            return
        i = self._late_slot(addr)
        if i >= 0:
            self._late_state[i] |= _LATE_WAITING
            return
        i = self._late_next
        self._late_next = (i + 1) % _LATE_SLOTS
        self._late[i * _ADDR_LEN : (i + 1) * _ADDR_LEN] = addr
        self._late_state[i] = _LATE_WAITING

    def _on_pair_pub(self, c: _Conn, data: bytes) -> None:
        if not self._pairing:
            raise ProtocolError("pairing window closed")
        p = c.pairing
        if p is None:
            p = c.start_pairing(self._random(32))
        p.on_pub(data)  # once both halves are in, poll() runs the two X25519 a few steps at a time

    def _work_pairing(self, c: _Conn) -> None:
        p = c.pairing
        if p is None:
            return
        try:
            done = p.work(_LADDER_STEPS)
        except ProtocolError:  # a low-order public key
            c.pairing = None
            self._bad(c)
            return
        if done:
            for frame in p.frames():
                self._push(A_NOTIFY, c.handle, frame)

    def _on_pair_confirm(self, c: _Conn, data: bytes, now_ms: int) -> None:
        if not self._pairing or c.pairing is None:
            raise ProtocolError("no pairing in progress")
        key, phone_nonce = c.pairing.finish(data, c.nonce)
        c.pairing = None
        _unload_pairing()
        self._key = key
        self._save_key()
        self._key_changed(now_ms)
        self._forget_tokens()  # a new phone numbers its Plays afresh
        self._window(False, now_ms)  # one pairing per window
        self._just_paired = True
        self._just_paired_until = add(now_ms, _JUST_PAIRED_MS)
        self._play_code(now_ms, _PAIRED_BLINK_MS)
        self._auth_window = _AUTH_TIMEOUT_MS  # the owner's phone is here now: its Auths will teach it
        self._auth_learnt = True
        if c.addr is not None:
            self._owner_addr = c.addr
        self._flags_changed(now_ms)
        self._start_session(c, frames.Session(key, c.nonce, phone_nonce, frames.BAND), now_ms)

    def _on_message(self, c: _Conn, msg, now_ms: int) -> None:
        kind = msg.KIND
        if kind == frames.PLAY:
            state = self._token_state(msg.token)
            if state == _TOKEN_PLAYED:  # a resent Play whose Felt was lost: answer, no second buzz
                self._notify(c, frames.Felt(msg.token))
                return
            if state == _TOKEN_QUEUED:
                return
            n = patterns.render(msg.pattern, msg.signature, msg.intensity, msg.repeat, self._steps)
            if self.player.start(self._steps, n, now_ms, msg.token):
                self._remember_token(msg.token)
        elif kind == frames.ACK:
            removed = self.outbox.ack(msg.seq)
            if removed > 0:
                c.progress_ms = now_ms
                if not seq_after(c.sent_upto, (self.outbox.next_seq - 1 - len(self.outbox)) & 0xFFFF):
                    c.sent_upto = (self.outbox.next_seq - 1 - len(self.outbox)) & 0xFFFF
                self._save_outbox()
        elif kind == frames.SET_TIME:
            self._epoch_s = msg.epoch_s
            self._epoch_ms = now_ms
            self.tz_minutes = msg.tz_minutes
            self._send_presses(c, now_ms)
        elif kind == frames.SET_CONFIG:
            self._apply_config(msg.key, msg.value)
            self._save_key()
        elif kind == frames.IDENTIFY:
            self._play_code(now_ms, msg.seconds * 1000)
        elif kind == frames.UNPAIR:
            self._key = None
            self._save_key()
            self._key_changed(now_ms)
            self._drop(c)
            self._flags_changed(now_ms)

    def _apply_config(self, key: int, value: int) -> None:
        if key == frames.CONFIG_MOTOR_MAX:
            self.motor_max = value
            self.player.max_duty = value * 1023 // 255
        elif key == frames.CONFIG_LED:
            self.led.enabled = value != 0
        elif key == frames.CONFIG_LOW_BATTERY_PCT:
            self.battery.low_pct = value
        elif key == frames.CONFIG_IDLE_SLEEP_MIN:
            self.policy.idle_sleep_min = value

    # ------------------------------------------------------------------ gestures and playback
    def _on_gesture(self, ev, now_ms: int) -> None:
        kind, value, duration, _t = ev
        self.policy.activity(now_ms)
        if kind == button.TAP or kind == button.SQUEEZE:
            gesture = frames.GESTURE_TAP if kind == button.TAP else frames.GESTURE_SQUEEZE
            self.presses += 1
            self.outbox.add(gesture, value, duration, now_ms, self.epoch_now(now_ms))
            self._save_outbox()  # (no faster advertising: a scanner would see a press)
        elif kind == button.PAIRING:
            self._window(True, now_ms)
            self._pairing_until = add(now_ms, _PAIRING_WINDOW_MS)
            self._play_own(patterns.PAIRING, now_ms)
            self.backoff.kick(now_ms)
            if self._asleep:
                self._asleep = False
        elif kind == button.FACTORY_RESET:
            self._window(False, now_ms)
            self._push(A_MOTOR, self.player.stop(now_ms), 0)
            self._play_own(patterns.RESET_CONFIRM, now_ms, _TOKEN_RESET)
            self._resetting = True

    def _window(self, open_: bool, now_ms: int) -> None:
        """Open or close the pairing window; the CPU runs at 160 MHz while it is open (X25519)."""
        self._pairing = open_
        self.led.pairing = open_
        mhz = self.policy.cpu_mhz
        if open_ and mhz < _PAIRING_CPU_MHZ:
            mhz = _PAIRING_CPU_MHZ
        if mhz != self.meter.cpu_mhz:
            self._push(A_CPU, mhz, 0)
            self.meter.set_cpu(mhz, now_ms)

    def _play_code(self, now_ms: int, blink_ms: int) -> None:
        """The rising wave and the pairing code's pulses, blinking: "this is the band with your key"."""
        key = self._key
        if key is None:
            return
        count = frames.pairing_code(key)
        n = patterns.render(patterns.PAIRED, patterns.SIGNATURE_PAIRED, 255, count, self._steps)
        self.player.start(self._steps, n, now_ms, _TOKEN_INTERNAL)
        self.led.identify(now_ms, blink_ms)

    def _play_own(self, pattern: int, now_ms: int, token: int = _TOKEN_INTERNAL) -> None:
        n = patterns.render(pattern, 0, 255, 1, self._steps)
        self.player.start(self._steps, n, now_ms, token)

    def _token_state(self, token: int) -> int:
        for i in range(_RECENT_TOKENS):
            if self._tokens[i] == token:
                return self._token_flags[i]
        return 0

    def _remember_token(self, token: int) -> None:
        i = self._tokens_next
        self._tokens[i] = token
        self._token_flags[i] = _TOKEN_QUEUED
        self._tokens_next = (i + 1) % _RECENT_TOKENS

    def _on_played(self, token: int, now_ms: int) -> None:
        for i in range(_RECENT_TOKENS):
            if self._tokens[i] == token:
                self._token_flags[i] = _TOKEN_PLAYED
        if token == _TOKEN_RESET:
            self._resetting = False
            self._factory_reset()
            return
        if token >= _TOKEN_INTERNAL:
            return
        c = self._conn
        if c is not None and c.session is not None:
            self._notify(c, frames.Felt(token))
            return
        if self._felt_n >= _FELT_QUEUE:  # keep the newest receipts
            self._felt_h = (self._felt_h + 1) % _FELT_QUEUE
            self._felt_n -= 1
            self.felt_lost += 1
        self._felt[(self._felt_h + self._felt_n) % _FELT_QUEUE] = token
        self._felt_n += 1

    def _factory_reset(self) -> None:
        self._key = None
        self._forget_tokens()
        self.outbox.clear(self._random_seq())
        try:
            self._keystore.erase()
            self._storage.write(self.outbox.to_bytes())
        except OSError:
            self.storage_errors += 1
        c = self._conn
        if c is not None:
            self._drop(c)
        self._push(A_FACTORY_RESET, 0, 0)

    # ------------------------------------------------------------------ sending
    def _notify(self, c: _Conn, msg) -> None:
        s = c.session
        if s is not None:
            self._push(A_NOTIFY, c.handle, s.seal(msg))

    def _send_status(self) -> None:
        c = self._conn
        if c is not None and c.session is not None:
            self._notify(
                c,
                frames.Status(self.battery.percent, self.flags, self.outbox.dropped, self.rejected & 0xFFFF),
            )

    def _send_presses(self, c: _Conn, now_ms: int) -> None:
        ob = self.outbox
        n = len(ob)
        if not n:
            c.progress_ms = now_ms
            return
        i = ob.index_after(c.sent_upto)
        if i and diff(now_ms, c.progress_ms) >= _RESEND_MS:
            i = 0  # sent but not acknowledged for a while: send everything pending again
        if i == 0:
            c.progress_ms = now_ms  # the resend timer runs from the (re)send of the oldest
        sent = 0
        epoch = self.epoch_now(now_ms)
        while i < n and sent < _SEND_BURST and self._qn < _ACTIONS - 2:
            seq, gesture, value, duration, age = ob.get(i, now_ms, epoch)
            self._notify(c, frames.Press(seq, gesture, value, duration, age, self.battery.percent))
            c.sent_upto = seq
            sent += 1
            i += 1

    def _state_frame(self, c: _Conn) -> bytes:
        key = self._key if self._key is not None else frames.UNPAIRED_KEY
        return frames.encode_state(key, c.nonce, self.flags, self.battery.percent, FIRMWARE)

    def _flags_changed(self, now_ms: int) -> None:
        f = self.flags
        if f == self._flags_sent:
            return
        self._flags_sent = f
        self.led.paired = self._key is not None
        c = self._conn
        if c is not None:
            self._push(A_STATE, self._state_frame(c), 0)
        elif not self._asleep and diff(now_ms, self._adv_after) >= 0:
            self._push_advert(self.backoff.interval_ms, now_ms)
        else:
            self._adv_at = add(now_ms, -_ADV_REFRESH_MS)

    def _advertise(self, now_ms: int) -> None:
        self._asleep = False
        self._adv_at = now_ms
        self.backoff.poll(now_ms)
        self._flags_sent = self.flags
        self.led.paired = self._key is not None
        self._push_advert(self.backoff.interval_ms, now_ms)

    def _rotation_due(self, now_ms: int) -> bool:
        return not self._addr_pending and not self._pairing and diff(now_ms, self._rotate_at) >= 0

    def _push_advert(self, interval_ms: int, now_ms: int) -> None:
        """Advertise the current flags and token, or first take a new address if one is due (its
        on_address advertises; until then nothing is advertised with a token of the old one)."""
        if self._addr_pending:
            return
        # the roll (and with it the waiting bit) steps at most once per beat, whatever else
        # re-advertises in between: an advert off the beat repeats the roll's token
        step = self._stepped and diff(now_ms, self._roll_at) >= _ADV_REFRESH_MS
        roll = (self._roll + 1) % adv.ROLLS if step else self._roll
        if step and roll == self._roll_first:
            if not self._pairing:
                self._rotate_at = now_ms  # the roll came round: a new address first
            roll, step = self._roll, False  # (the pairing window keeps its address: the roll waits)
        if self._rotation_due(now_ms):
            if self._qn < _ACTIONS:  # never lose an A_ADDRESS (the band would stay silent): next poll
                self._addr_pending = True
                self._push(A_ADDRESS, 0, 0)
            return
        if step or not self._stepped:
            self._roll_at = now_ms
            self._waiting = 1 if len(self.outbox) else 0
        self._roll, self._stepped = roll, True
        self._adv_at = now_ms
        tok = adv.token(self._ident, self._address, roll, self._waiting)
        self._push(A_ADVERTISE, interval_ms, adv.encode_advertising(self.flags, tok, roll))

    def _key_changed(self, now_ms: int) -> None:
        """A new band key (or none): its identity key makes the tokens; the next advert comes from
        a new address, so nothing links the band before and after."""
        self._ident = Hmac(adv.identity_key(self._key if self._key is not None else frames.UNPAIRED_KEY))
        self._rotate_at = now_ms

    # ------------------------------------------------------------------ storage
    def _random_seq(self) -> int:
        b = self._random(2)
        return b[0] | (b[1] << 8)

    def _save_outbox(self) -> None:
        try:
            self._storage.write(self.outbox.to_bytes())
        except OSError:
            self.storage_errors += 1

    def save_played(self, starting: int) -> None:
        """Keep the Play tokens played lately, ``starting`` with them, in flash (the A_PLAYING action)."""
        if self._played is None:
            return
        out = bytearray(b"P")
        for i in range(_RECENT_TOKENS):
            t = self._tokens[i]
            if (self._token_flags[i] == _TOKEN_PLAYED or t == starting) and 0 <= t < _TOKEN_INTERNAL:
                out += struct.pack("<H", t)
        try:
            self._played.write(out)
        except OSError:
            self.storage_errors += 1

    def _forget_tokens(self) -> None:
        for i in range(_RECENT_TOKENS):
            self._tokens[i] = -1
            self._token_flags[i] = 0
        if self._played is not None:
            try:
                self._played.erase()
            except OSError:
                self.storage_errors += 1

    def _load_played(self) -> None:
        # a Play resent after a reboot (its Felt was lost) is answered without a second buzz
        try:
            data = self._played.read() if self._played is not None else None
        except OSError:
            self.storage_errors += 1
            return
        if not data or data[0] != 0x50 or len(data) % 2 != 1 or len(data) > 1 + 2 * _RECENT_TOKENS:
            return
        for i in range(1, len(data), 2):
            self._remember_token(data[i] | (data[i + 1] << 8))
            self._token_flags[(self._tokens_next - 1) % _RECENT_TOKENS] = _TOKEN_PLAYED

    def _save_key(self) -> None:
        body = struct.pack(
            _KEY_FMT,
            self._key or frames.UNPAIRED_KEY,
            self.motor_max,
            1 if self.led.enabled else 0,
            self.battery.low_pct,
            self.policy.idle_sleep_min,
        )
        try:
            self._keystore.write(body + _digest(body))
        except OSError:
            self.storage_errors += 1

    def _load_key(self) -> None:
        try:
            data = self._keystore.read()
        except OSError:
            self.storage_errors += 1
            return
        if data is None:
            return
        if len(data) != _KEY_FILE or _digest(data[:_KEY_BODY]) != bytes(data[_KEY_BODY:]):
            self.storage_errors += 1  # corrupt: the band is unpaired (re-pair with the 5 s hold)
            return
        key, motor, led_on, low, idle = struct.unpack_from(_KEY_FMT, data, 0)
        key = bytes(key)
        self._key = None if key == frames.UNPAIRED_KEY else key
        if motor:
            self._apply_config(frames.CONFIG_MOTOR_MAX, motor)
        self._apply_config(frames.CONFIG_LED, led_on)
        if 5 <= low <= 50:
            self._apply_config(frames.CONFIG_LOW_BATTERY_PCT, low)
        self._apply_config(frames.CONFIG_IDLE_SLEEP_MIN, idle)


def _unload_pairing() -> None:
    """Forget the pairing code (X25519 and all): the band needs it again only in a pairing window."""
    import sys

    import hugproto

    for name in ("pairing", "x25519"):
        sys.modules.pop("hugproto." + name, None)
        if name in hugproto.__dict__:
            delattr(hugproto, name)


def _digest(body) -> bytes:
    import hashlib

    return hashlib.sha256(body).digest()[:4]
