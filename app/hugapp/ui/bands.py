"""Bands: the bands paired here, and finding and pairing one (with the 5-second countdown)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hugapp.core import bandlink, uisettings
from hugapp.core import relaystore as rs
from hugapp.core.api import CompanionApi
from hugapp.core.bandlink import FoundBand, LinkState
from hugapp.core.hub import hub_words
from hugapp.ui.shared import Reads, Shared
from hugapp.ui.words import ago, bars, link_state_words

SCAN_SECONDS = 5.0
PAIR_HOLD_SECONDS = 5  # the countdown shown while the wearer holds the heart
PAIR_RETRY_SECONDS = 12.0  # after the countdown, keep trying while the pairing window opens


@dataclass(frozen=True)
class BandRow:
    band_id: str
    name: str
    state: str
    connected: bool
    battery: int | None
    low_battery: bool
    last_seen: str
    wearer: str = ""  # who wears it ("you", or a name)
    co_owners: str = ""  # the other companions serving it ("Home"), or ""
    at_school: bool = False  # enrolled at a classroom hub


@dataclass(frozen=True)
class Wearer:
    """Someone a band paired here may be for: you, or a person of the circles without a phone."""

    member_id: str
    name: str


def wearer_choices(api_members: list[rs.Member], me: rs.Identity, wearers: list[rs.Wearer]) -> list[Wearer]:
    """Whose band a new band can be: yours first, then each person without a phone, once."""
    out = [Wearer(me.member_id, "Mine")]
    seen = {me.member_id}
    for member_id, name in [(w.member_id, w.name) for w in wearers] + [
        (m.member_id, m.name) for m in api_members if m.phoneless
    ]:
        if member_id not in seen:
            seen.add(member_id)
            out.append(Wearer(member_id, f"{name}'s"))
    return out


@dataclass(frozen=True)
class FoundRow:
    address: str  # where it advertises now (it changes every few minutes)
    name: str
    rssi: int
    bars: int  # 0..4
    status: str
    pairing_open: bool
    paired_here: bool


@dataclass(frozen=True)
class BandsView:
    bands: list[BandRow]
    found: list[FoundRow]
    scanning: bool
    scan_progress: float  # 0..1
    pairing: str  # address being paired, or ""
    pair_countdown: int  # seconds left of the 5 s hold; 0 when not counting
    pair_message: str


class BandsActions:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.found: dict[str, FoundBand] = {}  # by band id (ours) or address
        self.scanning = False
        self.scan_started = 0.0
        self.pairing = ""
        self.pair_countdown = 0
        self.pair_message = ""

    def scan(self) -> None:
        s = self.shared
        if self.scanning:
            return
        self.scanning = True
        self.scan_started = s.clock()
        self.found.clear()
        s.error = ""

        def heard(band: FoundBand) -> None:
            self.found[_key(band)] = band
            s.changed()

        async def run() -> None:
            try:
                for band in await s.api.scan(SCAN_SECONDS, heard):
                    self.found[_key(band)] = band
                if not self.found:
                    s.error = "No bands found — bring the band close to the phone and scan again"
            finally:
                self.scanning = False

        s.spawn(run(), "scan")

    def pair(self, address: str, name: str = "", wearer: str = "", new_wearer: str = "") -> None:
        """Pair with the countdown: if the band's window is not open yet, count 5 s while the wearer
        holds the heart, then keep trying for a few seconds. Whose band: ``wearer`` (a member id; yours
        when empty) or ``new_wearer``, the name of someone without a phone."""
        s = self.shared
        if self.pairing:
            return
        new_wearer = new_wearer.strip()
        if new_wearer and len(new_wearer) > rs.MAX_NAME:
            s.fail(f"A name has at most {rs.MAX_NAME} characters")
            return
        self.pairing = address
        s.error = ""
        band = next((b for b in self.found.values() if b.address == address), None)
        if band is not None and band.band_id:
            label = band.name  # one of ours, pairing again
        elif name and name not in (bandlink.READY_TO_PAIR, bandlink.OTHER_BAND):
            label = name
        else:
            label = bandlink.NEW_BAND_NAME
        if new_wearer:
            label = f"{new_wearer}'s band"

        async def run() -> None:
            try:
                if band is None or not band.pairing_open:
                    self.pair_message = "Hold your band's heart for 5 seconds, until it buzzes"
                    for left in range(PAIR_HOLD_SECONDS, 0, -1):
                        self.pair_countdown = left
                        s.changed()
                        await asyncio.sleep(1.0)
                    self.pair_countdown = 0
                self.pair_message = f"Pairing {label}…"
                s.changed()
                deadline = asyncio.get_running_loop().time() + PAIR_RETRY_SECONDS
                while True:
                    try:
                        paired = await s.api.pair_band(address, label, wearer or None, new_wearer or None)
                        break
                    except bandlink.PairingWindowClosed:
                        if asyncio.get_running_loop().time() > deadline:
                            raise
                        await asyncio.sleep(1.0)
                self.pair_message = ""
                s.notice = (
                    f"{label} is paired: it buzzed {paired.code} times after a wave. "
                    "If it did not, another band took the pairing: hold its heart 10 s and pair again"
                )
                self.found = {k: b for k, b in self.found.items() if b.address != address}
            finally:
                self.pairing = ""
                self.pair_countdown = 0
                if s.error:
                    self.pair_message = ""

        s.spawn(run(), "pair")

    def pair_for_someone_new(self, address: str, name: str) -> None:
        """Pair a band for a new person without a phone, named ``name``."""
        if not name.strip():
            self.shared.fail("Type the name of the person who will wear the band")
        else:
            self.pair(address, new_wearer=name)

    def wearers(self) -> list[Wearer]:
        """Whose a band paired now can be (the pairing popup's choices)."""
        api = self.shared.api
        return wearer_choices(api.members(), api.identity(), rs.wearers(api.store))

    def co_owner_choices(self, band_id: str) -> list[tuple[str, str]]:
        """(member id, name) of the circle's companions that could co-own the band (not yet doing so)."""
        api = self.shared.api
        owning = {o.member_id for o in api.store.owners(band_id)}
        out: dict[str, str] = {}
        for m in api.members():
            if not m.phoneless and m.member_id not in owning:
                out.setdefault(m.member_id, m.name)
        return list(out.items())

    def share(self, band_id: str, member_id: str) -> None:
        """Let another companion of the circle (the home gateway) co-own the band."""
        self.shared.spawn(self.shared.api.share_band(band_id, member_id), "share the band")

    def test_buzz(self, band_id: str) -> None:
        self.shared.spawn(self.shared.api.test_buzz(band_id), "test buzz")

    def forget(self, band_id: str) -> None:
        self.shared.spawn(self.shared.api.forget_band(band_id), "forget")

    def enrol_at_school(self, band_id: str, code: str) -> None:
        """The code the classroom hub shows: the hub serves the band at school."""
        s = self.shared

        async def run() -> None:
            await s.api.enrol_at_hub(code.strip(), band_id)
            hub = hub_words(s.api.store.band_hub_name(band_id))
            s.notice = f"{s.api.store.band(band_id).name} is served by {hub} at school"

        s.spawn(run(), "enrol at the class hub")

    def leave_school(self, band_id: str) -> None:
        self.shared.spawn(self.shared.api.leave_hub(band_id), "leave the class hub")

    def rename_band(self, band_id: str, name: str) -> None:
        if not name.strip():
            self.shared.fail("A band needs a name")
        else:
            self.shared.spawn(self.shared.api.rename_band(band_id, name.strip()), "rename band")

    def view(self, reads: Reads, low_battery_percent: int) -> BandsView:
        api, now = self.shared.api, reads.now
        paired = api.store.bands()
        rows: list[BandRow] = []
        for b in paired:
            wearer = b.wearer or reads.me.member_id
            owners = ", ".join(reads.name_of(o.member_id) for o in api.store.owners(b.band_id))
            live = api.band_live(b.band_id)
            battery = live.battery if live.battery is not None else b.battery
            known = battery > 0
            hub = hub_words(api.store.band_hub_name(b.band_id))
            if live.via:
                where = f"at school, via {hub}"
            elif live.state is LinkState.PARKED:
                where = f"at school, via {hub}, idle"
            else:
                where = link_state_words(live.state, b.name)
            rows.append(
                BandRow(
                    b.band_id,
                    b.name,
                    where,
                    live.state is LinkState.CONNECTED,
                    battery if known else None,
                    uisettings.is_low(battery, low_battery_percent),
                    ago(now, b.last_seen) if b.last_seen else "never",
                    "you" if wearer == reads.me.member_id else reads.name_of(wearer),
                    owners,
                    api.store.band_hub(b.band_id) is not None,
                )
            )
        here = {b.band_id for b in paired}
        found = [
            FoundRow(
                f.address,
                f.name,
                f.rssi,
                bars(f.rssi),
                found_status(f, here),
                f.pairing_open,
                f.band_id in here,
            )
            for f in sorted(self.found.values(), key=lambda f: -f.rssi)
        ]
        progress = min(1.0, (now - self.scan_started) / SCAN_SECONDS) if self.scanning else 0.0
        return BandsView(
            rows, found, self.scanning, progress, self.pairing, self.pair_countdown, self.pair_message
        )


def _key(band: FoundBand) -> str:
    """One row per band: ours by band id (its address may change during a scan), others by address."""
    return band.band_id or band.address


def served_words(api: CompanionApi, reads: Reads, band_id: str) -> str:
    """Which owner serves a band, its battery and when it was last seen: "connected via this phone,
    battery 80%", or, away from this phone, the co-owners that may be serving it."""
    band = api.store.band(band_id)
    live = api.band_live(band_id)
    battery = live.battery if live.battery is not None else band.battery
    charge = f", battery {battery}%" if battery > 0 else ""
    hub = hub_words(api.store.band_hub_name(band_id))
    if live.state is LinkState.CONNECTED and live.via:
        return f"band at school, via {hub}{charge}"
    if live.state is LinkState.CONNECTED:
        return f"band connected via this phone{charge}"
    if live.state is LinkState.PARKED:  # the hub let the link go until something is to be carried
        last = f", last seen {ago(reads.now, band.last_seen)}" if band.last_seen else ""
        return f"band at school, via {hub}, idle{last}{charge}"
    owners = api.store.owners(band_id)
    online = [reads.name_of(o.member_id) for o in owners if api.online(o.link_id, o.member_id)]
    seen = f", last seen here {ago(reads.now, band.last_seen)}" if band.last_seen else ""
    if online:
        return f"band served via {' or '.join(online)} (not in range of this phone){seen}{charge}"
    return f"band out of range of this phone{seen}{charge}"


def found_status(band: FoundBand, paired_here: set[str]) -> str:
    if band.band_id in paired_here:
        return "paired with this phone"
    if band.pairing_open:
        return "ready to pair"
    return "paired elsewhere" if band.paired else "not paired"
