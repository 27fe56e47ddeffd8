"""History: every hug with its receipt, and a week's chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from hugapp.core.api import CompanionApi
from hugapp.core.hugstore import HistoryEntry, HugStore
from hugapp.ui.shared import Reads
from hugapp.ui.words import WEEKDAYS
from hugproto import frames

CHART_DAYS = 7


@dataclass(frozen=True)
class HistoryRow:
    hug_id: str
    when: str
    text: str
    receipt: str  # "sent" / "delivered" / "felt" / "missed" / "received"
    direction: str


@dataclass(frozen=True)
class HistoryView:
    rows: list[HistoryRow]
    chart: list[tuple[str, int, int]]  # (day label, sent, received), oldest first


def history_view(api: CompanionApi, reads: Reads) -> HistoryView:
    felt_here = HugStore(api.store).felt_hug_ids()
    names = {w.member_id: w.name for w in reads.wearers} | {m.member_id: m.name for m in reads.members}
    rows = [_row(h, names, felt_here) for h in reads.history]
    return HistoryView(rows, _chart(reads.history, datetime.fromtimestamp(reads.now).date()))


def _row(h: HistoryEntry, names: dict[str, str], felt_here: set[str]) -> HistoryRow:
    when = datetime.fromtimestamp(h.created_at).strftime("%a %H:%M")
    if h.hug.gesture == frames.GESTURE_SQUEEZE:
        what = "a squeeze"
    else:
        what = "a hug" if h.hug.value <= 1 else f"{h.hug.value} taps"
    if h.hug.count > 1:
        what += f" (×{h.hug.count})"
    if h.direction == "out" and h.hug.sender in names:  # from the band of someone without a phone
        back = " back" if h.hug.hug_back_of else ""
        text = f"{names[h.hug.sender]} sent {what}{back}"
        state = "missed" if h.missed else h.receipt.name.lower()
    elif h.direction == "out":
        source = "from the phone" if h.source_band == "screen" else "from your band"
        text = f"You sent {what} {source}"
        state = "missed" if h.missed else h.receipt.name.lower()
    else:
        back = " back" if h.hug.hug_back_of else ""
        text = f"{names.get(h.sender, 'Someone')} sent {what}{back}"
        state = "missed" if h.missed else ("felt" if h.hug_id in felt_here else "received")
    return HistoryRow(h.hug_id, when, text, state, h.direction)


def _chart(history: list[HistoryEntry], today: date) -> list[tuple[str, int, int]]:
    chart: list[tuple[str, int, int]] = []
    for i in range(CHART_DAYS - 1, -1, -1):
        day = today - timedelta(days=i)
        day_hugs = [h for h in history if datetime.fromtimestamp(h.created_at).date() == day]
        sent = sum(1 for h in day_hugs if h.direction == "out")
        received = sum(1 for h in day_hugs if h.direction == "in")
        chart.append((WEEKDAYS[day.weekday()], sent, received))
    return chart
