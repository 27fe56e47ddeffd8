"""What the screens show and do, without Kivy: the adapter between the UI and the core.

The Kivy app (``hugapp.ui.app``) owns one :class:`Controller` per companion's screens, over a
:class:`hugapp.control.Core`: a Companion in this process (desktop) or the one the Android service
runs (over the control channel). Screens call its actions (``scan``,
``pair``, ``send_hug``, ``offer_link``...), which start background tasks on the running asyncio loop
and return at once, so a tap never blocks the loop. Whenever anything may have changed (the core's
``on_change``, a task finishing, an error) the controller calls ``on_update``; the app batches those
calls with a Kivy trigger and reads :meth:`Controller.snapshot`, plain data the screens copy into
their Kivy properties. Errors become sentences a person can act on (:func:`describe_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from hugapp.control import ControlError, Core, LocalCore, Offer
from hugapp.core import bandlink, linking
from hugapp.core.bandlink import FoundBand, LinkState
from hugapp.core.companion import Companion
from hugapp.core.hugs import HugError
from hugapp.core.hugstore import HugStore
from hugapp.core.relay import RelayError
from hugapp.core.schedule import DayType, QuietMode, QuietWindow, Schedule
from hugapp.core.store import StoreError
from hugproto import frames

log = logging.getLogger("hugapp.ui")

SCAN_SECONDS = 5.0
PAIR_HOLD_SECONDS = 5  # the countdown shown while the wearer holds the heart
PAIR_RETRY_SECONDS = 12.0  # after the countdown, keep trying while the pairing window opens
CHART_DAYS = 7
LOW_BATTERY_DEFAULT = 20
_SETTINGS_UI = "ui"  # key in the core's settings table for the app's own settings
_PIN_ROUNDS = 100_000


# ---------------------------------------------------------------------------------- errors in words


def describe_error(exc: BaseException) -> str:
    """A sentence a person can act on, for any error an action can raise."""
    text = str(exc).strip()
    low = text.lower()
    if isinstance(exc, bandlink.BandLinkError | linking.LinkError | ControlError):
        return text[:1].upper() + text[1:]
    if any(
        w in low for w in ("powered off", "turned off", "not powered", "notready", "no bluetooth adapter")
    ):
        return "Bluetooth is off — turn it on in your phone's settings and try again"
    if type(exc).__name__ == "BleakError" or "bluetooth" in low:
        return f"Bluetooth trouble: {text or 'the radio did not answer'} — try again in a moment"
    if isinstance(exc, ConnectionRefusedError) or (isinstance(exc, RelayError) and "connect" in low):
        return "Can't reach the family broker — check the internet connection and try again"
    if isinstance(exc, TimeoutError):
        return "That took too long — check the band is close and try again"
    if isinstance(exc, HugError | StoreError | ValueError):
        return text[:1].upper() + text[1:] if text else "That setting isn't valid"
    if isinstance(exc, RelayError | OSError):
        return f"Can't reach the family broker ({text or type(exc).__name__}) — try again later"
    return f"Something went wrong ({type(exc).__name__}: {text})"


def link_state_words(state: LinkState | None, band_name: str) -> str:
    if state is None or state is LinkState.STOPPED:
        return "not connected"
    if state is LinkState.OUT_OF_RANGE:
        return f"{band_name} is out of range — bring it closer to the phone"
    return state.value


# ---------------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class MemberCard:
    member_id: str
    name: str
    initial: str
    online: bool | None  # None: no presence heard yet
    status: str
    hugs_today: int
    signature: int


@dataclass(frozen=True)
class BandRow:
    address: str
    name: str
    state: str
    connected: bool
    battery: int | None
    low_battery: bool
    last_seen: str


@dataclass(frozen=True)
class FoundRow:
    address: str
    name: str
    rssi: int
    bars: int  # 0..4
    status: str
    pairing_open: bool
    paired_here: bool


@dataclass(frozen=True)
class HistoryRow:
    hug_id: str
    when: str
    text: str
    receipt: str  # "sent" / "delivered" / "felt" / "missed" / "received"
    direction: str


@dataclass(frozen=True)
class Snapshot:
    me: str
    members: list[MemberCard]
    bands: list[BandRow]
    found: list[FoundRow]
    scanning: bool
    scan_progress: float  # 0..1
    pairing: str  # address being paired, or ""
    pair_countdown: int  # seconds left of the 5 s hold; 0 when not counting
    pair_message: str
    history: list[HistoryRow]
    chart: list[tuple[str, int, int]]  # (day label, sent, received), oldest first
    link_code: str
    link_expires_in: int
    link_message: str
    hug_back_from: str  # name of the member whose hug can be answered now, or ""
    error: str
    notice: str
    child_mode: bool
    has_pin: bool
    low_battery_percent: int
    schedule_text: dict[str, str] = field(default_factory=dict[str, str])


def _bars(rssi: int) -> int:
    return 4 if rssi >= -55 else 3 if rssi >= -67 else 2 if rssi >= -78 else 1 if rssi >= -90 else 0


def _ago(now: float, then: float) -> str:
    s = max(0, int(now - then))
    if s < 60:
        return "just now"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


def windows_text(windows: tuple[QuietWindow, ...] | list[QuietWindow]) -> str:
    """Quiet windows as text a person edits: ``21:00-07:00 hold, 09:00-15:00 gentle``."""
    return ", ".join(f"{w.start:%H:%M}-{w.end:%H:%M} {w.mode.value}" for w in windows)


def parse_windows(text: str) -> list[QuietWindow]:
    """The inverse of :func:`windows_text`; raises ValueError with a sentence when malformed."""
    out: list[QuietWindow] = []
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        words = part.split()
        span = words[0] if words else ""
        mode = words[1].lower() if len(words) > 1 else "hold"
        try:
            start_s, end_s = span.split("-")
            start = dtime.fromisoformat(start_s.strip())
            end = dtime.fromisoformat(end_s.strip())
            out.append(QuietWindow(start, end, QuietMode(mode)))
        except (ValueError, HugError):
            raise ValueError(
                f"'{part}' isn't a quiet window — write it like 21:00-07:00 hold or 09:00-15:00 gentle"
            ) from None
    return out


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def school_days_text(days: frozenset[int] | set[int] | list[int]) -> str:
    return " ".join(WEEKDAYS[d] for d in sorted(days))


def parse_school_days(text: str) -> list[int]:
    days: list[int] = []
    for word in text.replace(",", " ").split():
        key = word[:3].capitalize()
        if key not in WEEKDAYS:
            raise ValueError(f"'{word}' isn't a day — write school days like Mon Tue Wed Thu Fri")
        days.append(WEEKDAYS.index(key))
    return sorted(set(days))


def hash_pin(pin: str, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, _PIN_ROUNDS).hex()


# ---------------------------------------------------------------------------------- controller


class Controller:
    """Actions and state of the app over one running companion (see the module docstring).

    The app's own settings (child mode, PIN, low-battery level) are written to the store's ``ui``
    row from here, in either mode; everything the core uses changes through :class:`Core`."""

    def __init__(
        self,
        core: Core | Companion,
        on_update: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core: Core = LocalCore(core) if isinstance(core, Companion) else core
        self.on_update = on_update
        self.clock = clock
        self.tasks: set[asyncio.Task[Any]] = set()
        self.found: dict[str, FoundBand] = {}
        self.scanning = False
        self.scan_started = 0.0
        self.pairing = ""
        self.pair_countdown = 0
        self.pair_message = ""
        self.offer: Offer | None = None
        self.link_message = ""
        self.error = ""
        self.notice = ""
        self._low_alerted: set[str] = set()

    # -- plumbing ---------------------------------------------------------------------------------

    def changed(self) -> None:
        self.on_update()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run an action in the background; its error is shown in words, never raised into Kivy."""

        async def guarded() -> Any:
            try:
                return await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure of an action is shown to the person
                log.info("%s failed: %r", what, exc)
                self.error = describe_error(exc)
                return None
            finally:
                self.changed()

        task = asyncio.ensure_future(guarded())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.offer is not None:
            with contextlib.suppress(Exception):
                await self.offer.cancel()

    def dismiss_error(self) -> None:
        self.error = ""
        self.notice = ""
        self.changed()

    # -- app settings (stored in the core's settings table under "ui") -----------------------------

    def ui_settings(self) -> dict[str, Any]:
        value = HugStore(self.core.store).setting(_SETTINGS_UI)
        return value if isinstance(value, dict) else {}  # pyright: ignore[reportUnknownVariableType]

    def _save_ui_settings(self, settings: dict[str, Any]) -> None:
        HugStore(self.core.store).set_setting(_SETTINGS_UI, settings)

    def set_ui_setting(self, key: str, value: Any) -> None:
        settings = self.ui_settings()
        settings[key] = value
        self._save_ui_settings(settings)
        self.changed()

    @property
    def low_battery_percent(self) -> int:
        return int(self.ui_settings().get("low_battery", LOW_BATTERY_DEFAULT))

    @property
    def child_mode(self) -> bool:
        return bool(self.ui_settings().get("child_mode", False))

    def has_pin(self) -> bool:
        return "pin_hash" in self.ui_settings()

    def enter_child_mode(self, pin: str) -> bool:
        """Switch to the child's device mode behind a parent PIN (4-8 digits); False with an error."""
        if not (pin.isdigit() and 4 <= len(pin) <= 8):
            self.error = "The parent PIN must be 4 to 8 digits"
            self.changed()
            return False
        salt = secrets.token_bytes(16)
        settings = self.ui_settings()
        settings.update(child_mode=True, pin_salt=salt.hex(), pin_hash=hash_pin(pin, salt))
        self._save_ui_settings(settings)
        self.error = ""
        self.changed()
        return True

    def leave_child_mode(self, pin: str) -> bool:
        settings = self.ui_settings()
        salt = bytes.fromhex(str(settings.get("pin_salt", "")))
        if not secrets.compare_digest(hash_pin(pin, salt), str(settings.get("pin_hash", ""))):
            self.error = "That PIN isn't right"
            self.changed()
            return False
        settings["child_mode"] = False
        self._save_ui_settings(settings)
        self.error = ""
        self.changed()
        return True

    # -- hugs -------------------------------------------------------------------------------------

    def send_hug(self, squeeze_ms: int = 0) -> None:
        """The big heart: a tap, or (held) a squeeze whose length becomes the intensity."""

        async def run() -> None:
            if squeeze_ms >= 600:
                value = max(64, min(255, 64 + squeeze_ms // 10))
                await self.core.send_hug(frames.GESTURE_SQUEEZE, value, squeeze_ms)
            else:
                await self.core.send_hug(frames.GESTURE_TAP, 1)
            self.notice = "Hug sent"

        self.spawn(run(), "send a hug")

    def hug_back_from(self) -> str:
        """Name of the sender of the newest incoming hug if it arrived in the last 10 minutes."""
        for entry in self.core.history(20):
            if entry.direction == "in":
                if self.clock() - entry.created_at < 600:
                    return self._name_of(entry.sender)
                return ""
        return ""

    # -- bands ------------------------------------------------------------------------------------

    def scan(self) -> None:
        if self.scanning:
            return
        self.scanning = True
        self.scan_started = self.clock()
        self.found.clear()
        self.error = ""

        def heard(band: FoundBand) -> None:
            self.found[band.address] = band
            self.changed()

        async def run() -> None:
            try:
                for band in await self.core.scan(SCAN_SECONDS, heard):
                    self.found[band.address] = band
                if not self.found:
                    self.error = "No bands found — bring the band close to the phone and scan again"
            finally:
                self.scanning = False

        self.spawn(run(), "scan")

    def pair(self, address: str, name: str = "") -> None:
        """Pair with the countdown: if the band's window is not open yet, count 5 s while the wearer
        holds the heart, then keep trying for a few seconds."""
        if self.pairing:
            return
        self.pairing = address
        self.error = ""
        band = self.found.get(address)
        label = name or (band.name if band else address)

        async def run() -> None:
            try:
                if band is None or not band.pairing_open:
                    self.pair_message = "Hold your band's heart for 5 seconds, until it buzzes"
                    for left in range(PAIR_HOLD_SECONDS, 0, -1):
                        self.pair_countdown = left
                        self.changed()
                        await asyncio.sleep(1.0)
                    self.pair_countdown = 0
                self.pair_message = f"Pairing {label}…"
                self.changed()
                deadline = asyncio.get_running_loop().time() + PAIR_RETRY_SECONDS
                while True:
                    try:
                        await self.core.pair_band(address, label)
                        break
                    except bandlink.PairingWindowClosed:
                        if asyncio.get_running_loop().time() > deadline:
                            raise
                        await asyncio.sleep(1.0)
                self.pair_message = ""
                self.notice = f"{label} is paired"
                self.found.pop(address, None)
            finally:
                self.pairing = ""
                self.pair_countdown = 0
                if self.error:
                    self.pair_message = ""

        self.spawn(run(), "pair")

    def test_buzz(self, address: str) -> None:
        self.spawn(self.core.test_buzz(address), "test buzz")

    def forget(self, address: str) -> None:
        self.spawn(self.core.forget_band(address), "forget")

    def rename_band(self, address: str, name: str) -> None:
        if not name.strip():
            self.error = "A band needs a name"
            self.changed()
        else:
            self.spawn(self.core.rename_band(address, name.strip()), "rename band")

    # -- circle -----------------------------------------------------------------------------------

    def offer_link(self) -> None:
        async def run() -> None:
            if self.offer is not None:
                await self.offer.cancel()
            self.offer = None
            self.link_message = "Making a code…"
            self.changed()
            offer = await self.core.offer_link()
            self.offer = offer
            self.link_message = "Type this code on the other phone (valid 3 minutes, once)"
            self.changed()
            try:
                name = await offer.wait()
            finally:
                if self.offer is offer:
                    self.offer = None
            self.link_message = f"Linked with {name}"
            self.notice = self.link_message

        self.spawn(run(), "offer link")

    def join_link(self, code: str) -> None:
        async def run() -> None:
            self.link_message = "Joining…"
            self.changed()
            try:
                name = await self.core.join_link(code)
            except BaseException:
                self.link_message = ""
                raise
            self.link_message = f"Joined {name}'s circle"
            self.notice = self.link_message

        self.spawn(run(), "join link")

    def _name_of(self, member_id: str) -> str:
        for m in self.core.members():
            if m.member_id == member_id:
                return m.name
        return "you" if member_id == self.core.identity().member_id else "someone"

    # -- settings ---------------------------------------------------------------------------------

    def rename_me(self, name: str) -> None:
        if not name.strip():
            self.error = "A member needs a name"
            self.changed()
            return

        async def run() -> None:
            await self.core.rename_me(name.strip())
            self.notice = "Your name is saved; circles see it from the next link"

        self.spawn(run(), "rename me")

    def set_signature(self, member_id: str, signature: int) -> None:
        self.spawn(self.core.set_signature(member_id, signature), "set signature")

    def save_schedule(self, school_days: str, school: str, home: str, overrides: str) -> bool:
        try:
            ov: dict[date, DayType] = {}
            for part in filter(None, (p.strip() for p in overrides.replace(";", ",").split(","))):
                words = part.split()
                try:
                    ov[date.fromisoformat(words[0])] = DayType(words[1].lower())
                except (ValueError, IndexError, KeyError):
                    raise ValueError(
                        f"'{part}' isn't a day override — write it like 2025-12-24 home"
                    ) from None
            old = self.core.schedule()
            schedule = Schedule(
                {DayType.SCHOOL: parse_windows(school), DayType.HOME: parse_windows(home)},
                parse_school_days(school_days),
                ov,
                old.missed_after_s,
            )
        except (ValueError, HugError) as exc:
            self.error = describe_error(exc)
            self.changed()
            return False

        async def run() -> None:
            await self.core.set_schedule(schedule)
            self.error = ""
            self.notice = "Quiet hours saved"

        self.spawn(run(), "save quiet hours")
        return True

    def set_low_battery(self, text: str) -> None:
        if not text.strip().isdigit() or not 5 <= int(text) <= 80:
            self.error = "The low-battery alert is a percentage between 5 and 80"
            self.changed()
            return
        self.set_ui_setting("low_battery", int(text))

    # -- the snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        c = self.core
        now = self.clock()
        history = c.history(200)
        today = datetime.fromtimestamp(now).date()
        members = c.members()
        names = {m.member_id: m.name for m in members}
        low = self.low_battery_percent

        cards: list[MemberCard] = []
        seen_ids: set[str] = set()
        for m in members:
            if m.member_id in seen_ids:
                continue
            seen_ids.add(m.member_id)
            online = c.online(m.link_id, m.member_id)
            last_in = next(
                (h.created_at for h in history if h.direction == "in" and h.sender == m.member_id), None
            )
            status = "online" if online else ("offline" if online is False else "not heard from yet")
            if last_in is not None:
                status += f" · last hug {_ago(now, last_in)}"
            count = sum(
                1
                for h in history
                if datetime.fromtimestamp(h.created_at).date() == today
                and (h.sender == m.member_id or h.direction == "out")
            )
            cards.append(
                MemberCard(
                    m.member_id, m.name, (m.name[:1] or "?").upper(), online, status, count, m.signature
                )
            )

        bands: list[BandRow] = []
        for b in c.store.bands():
            live = c.band_live(b.address)
            battery = live.battery if live.battery is not None else b.battery
            battery_known = battery > 0
            is_low = battery_known and battery <= low
            if is_low and b.address not in self._low_alerted:
                self._low_alerted.add(b.address)
                c.notifier.notify("Band battery low", f"{b.name} is at {battery}% — charge it tonight")
            elif not is_low:
                self._low_alerted.discard(b.address)
            state = live.state
            bands.append(
                BandRow(
                    b.address,
                    b.name,
                    link_state_words(state, b.name),
                    state is LinkState.CONNECTED,
                    battery if battery_known else None,
                    is_low,
                    _ago(now, b.last_seen) if b.last_seen else "never",
                )
            )

        paired = {b.address for b in c.store.bands()}
        found = [
            FoundRow(
                f.address,
                f.name,
                f.rssi,
                _bars(f.rssi),
                "paired with this phone"
                if f.address in paired
                else "ready to pair"
                if f.pairing_open
                else "paired elsewhere"
                if f.paired
                else "not paired",
                f.pairing_open,
                f.address in paired,
            )
            for f in sorted(self.found.values(), key=lambda f: -f.rssi)
        ]

        felt_here = HugStore(c.store).felt_hug_ids()
        rows: list[HistoryRow] = []
        for h in history:
            when = datetime.fromtimestamp(h.created_at).strftime("%a %H:%M")
            if h.hug.gesture == frames.GESTURE_SQUEEZE:
                what = "a squeeze"
            else:
                what = "a hug" if h.hug.value <= 1 else f"{h.hug.value} taps"
            if h.hug.count > 1:
                what += f" (×{h.hug.count})"
            if h.direction == "out":
                source = "from the phone" if h.source_band == "screen" else "from your band"
                text = f"You sent {what} {source}"
                state = "missed" if h.missed else h.receipt.name.lower()
            else:
                back = " back" if h.hug.hug_back_of else ""
                text = f"{names.get(h.sender, 'Someone')} sent {what}{back}"
                state = "missed" if h.missed else ("felt" if h.hug_id in felt_here else "received")
            rows.append(HistoryRow(h.hug_id, when, text, state, h.direction))

        chart: list[tuple[str, int, int]] = []
        for i in range(CHART_DAYS - 1, -1, -1):
            day = today - timedelta(days=i)
            day_hugs = [h for h in history if datetime.fromtimestamp(h.created_at).date() == day]
            chart.append(
                (
                    WEEKDAYS[day.weekday()],
                    sum(1 for h in day_hugs if h.direction == "out"),
                    sum(1 for h in day_hugs if h.direction == "in"),
                )
            )

        schedule = c.schedule()
        offer = self.offer
        return Snapshot(
            me=c.identity().name,
            members=cards,
            bands=bands,
            found=found,
            scanning=self.scanning,
            scan_progress=min(1.0, (now - self.scan_started) / SCAN_SECONDS) if self.scanning else 0.0,
            pairing=self.pairing,
            pair_countdown=self.pair_countdown,
            pair_message=self.pair_message,
            history=rows,
            chart=chart,
            link_code=offer.code if offer is not None else "",
            link_expires_in=max(0, int(offer.expires_at - now)) if offer is not None else 0,
            link_message=self.link_message,
            hug_back_from=self.hug_back_from(),
            error=self.error,
            notice=self.notice,
            child_mode=self.child_mode,
            has_pin=self.has_pin(),
            low_battery_percent=low,
            schedule_text={
                "school_days": school_days_text(schedule.school_days),
                "school": windows_text(schedule.windows[DayType.SCHOOL]),
                "home": windows_text(schedule.windows[DayType.HOME]),
                "overrides": ", ".join(
                    f"{d.isoformat()} {t.value}" for d, t in sorted(schedule.overrides.items())
                ),
            },
        )
