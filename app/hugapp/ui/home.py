"""Home: the big heart, the circle's faces, and a hug back for a recent hug."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hugapp.core import relaystore as rs
from hugapp.ui.bands import served_words
from hugapp.ui.shared import Reads, Shared
from hugapp.ui.words import ago
from hugproto import frames

HUG_BACK_S = 600  # a hug that arrived this recently can be answered from Home
HUG_BACK_LOOKS = 20  # among the newest this many hugs
SQUEEZE_MS = 600  # held this long, the heart is a squeeze


@dataclass(frozen=True)
class MemberCard:
    member_id: str
    name: str
    initial: str
    online: bool | None  # None: no presence heard yet
    status: str
    hugs_today: int
    signature: int
    band: str = ""  # the state of a band worn by this person and owned here, or ""


@dataclass(frozen=True)
class HomeView:
    members: list[MemberCard]  # also shown by Link, Settings and the child's screen
    hug_back_from: str  # name of the member whose hug can be answered now, or ""


class HomeActions:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def send_hug(self, squeeze_ms: int = 0) -> None:
        """The big heart: a tap, or (held) a squeeze whose length becomes the intensity."""
        s = self.shared

        async def run() -> None:
            if squeeze_ms >= SQUEEZE_MS:
                value = max(64, min(255, 64 + squeeze_ms // 10))
                await s.api.send_from_screen(frames.GESTURE_SQUEEZE, value, squeeze_ms)
            else:
                await s.api.send_from_screen(frames.GESTURE_TAP, 1)
            s.notice = "Hug sent"

        s.spawn(run(), "send a hug")

    def view(self, reads: Reads) -> HomeView:
        return HomeView(member_cards(self.shared, reads), hug_back_from(reads))


def worn_here(shared: Shared, reads: Reads) -> dict[str, str]:
    """Member id -> the band id of a band here that person wears (people without a phone)."""
    return {
        b.wearer: b.band_id for b in shared.api.store.bands() if b.wearer and b.wearer != reads.me.member_id
    }


def hug_back_from(reads: Reads) -> str:
    """Name of the sender of the newest incoming hug if it arrived in the last 10 minutes."""
    for entry in reads.history[:HUG_BACK_LOOKS]:
        if entry.direction == "in":
            return reads.name_of(entry.sender) if reads.now - entry.created_at < HUG_BACK_S else ""
    return ""


def member_cards(shared: Shared, reads: Reads) -> list[MemberCard]:
    now, history = reads.now, reads.history
    today = datetime.fromtimestamp(now).date()
    cards: list[MemberCard] = []
    seen: set[str] = set()
    worn = worn_here(shared, reads)
    members = list(reads.members) + [  # someone without a phone served here, in no circle yet
        rs.Member("", w.member_id, w.name, "", b"", 0, ("",))
        for w in reads.wearers
        if w.member_id in worn and all(m.member_id != w.member_id for m in reads.members)
    ]
    for m in members:
        if m.member_id in seen:
            continue
        seen.add(m.member_id)
        band = served_words(shared.api, reads, worn[m.member_id]) if m.member_id in worn else ""
        online = None if m.phoneless else shared.api.online(m.link_id, m.member_id)
        last_in = next(
            (h.created_at for h in history if h.direction == "in" and h.sender == m.member_id), None
        )
        if m.phoneless:
            status = "no phone: wears a band" if band or m.served_by else "no phone"
        else:
            status = "online" if online else ("offline" if online is False else "not heard from yet")
        if last_in is not None:
            status += f" · last hug {ago(now, last_in)}"
        count = sum(
            1
            for h in history
            if datetime.fromtimestamp(h.created_at).date() == today
            and (h.sender == m.member_id or h.direction == "out")
        )
        initial = (m.name[:1] or "?").upper()
        cards.append(MemberCard(m.member_id, m.name, initial, online, status, count, m.signature, band))
    return cards
