"""Playback: the hugs due on this companion's bands, played under the quiet hours and the storm rule.

Per band, each pass:

- resend what was sent but not felt for a while, with the same token and pattern: the band answers
  Felt again without a second buzz; at once if a Play sent after it was felt first (the band plays
  in order, so its Felt was lost), before the band's memory of played tokens (16) moves past it;
- decide each due hug against the schedule now, where it takes effect: missed, held until the quiet
  hours end, played gently, or played; the pattern is chosen here too, once, for what is played;
- at most the storm rule's buzzes per rolling window, the rest folded into the next allowed buzz;
- never more plays in flight than the band can queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import tzinfo
from typing import Protocol

from hugapp.core import hugs
from hugapp.core import relaystore as rs
from hugapp.core.hugs import Hug, HugError, PlaySpec
from hugapp.core.hugstore import HugStore, Play
from hugapp.core.notify import Notifier
from hugapp.core.schedule import Action, Decision, local_timezone
from hugapp.core.store import Store

log = logging.getLogger("hugapp.playback")

LOCAL_LINK = ""  # link id of hugs between two bands on this companion
RESEND_PLAY_AFTER_S = 20.0
MAX_PLAYS_IN_FLIGHT = 4  # Plays sent and not yet felt, per band: the band queues four patterns
STORM_WINDOW_S = 60.0
STORM_MAX_BUZZES = 3


class Bands(Protocol):
    """The band side: is a band's link up, and play a pattern on it (the companion's BandLinks)."""

    def connected(self, band_id: str) -> bool: ...

    def want(self, band_id: str) -> None:
        """Something is due for a band that is not connected: a link parked at a hub connects."""
        ...

    async def play(self, band_id: str, spec: PlaySpec, token: int) -> None: ...


def _due_unheld(p: Play, now: float) -> bool:
    """A felt tick due now, or a Play sent and not felt whose resend is due."""
    if p.state == "pending":
        return p.hug is None and p.not_before <= now
    return p.state == "sent" and p.sent_at + RESEND_PLAY_AFTER_S <= now


def sender_name(store: Store, link_id: str, member_id: str) -> str:
    member = rs.member(store, link_id, member_id) or rs.person(store, member_id)
    return member.name if member is not None else "someone"


class Playback:
    def __init__(
        self,
        hugstore: HugStore,
        bands: Bands,
        notifier: Notifier,
        *,
        clock: Callable[[], float],
        tz: tzinfo | None,
        on_change: Callable[[], None],
        wearer_of: Callable[[str], str] = lambda _band: "",
    ) -> None:
        self.hugstore = hugstore
        self.wearer_of = wearer_of  # band -> its wearer, whose quiet hours it follows
        self.store = hugstore.store
        self.bands = bands
        self.notifier = notifier
        self.clock = clock
        self.tz = tz
        self.on_change = on_change
        self._reconnected: set[str] = set()  # bands whose unconfirmed plays are resent at once
        self._sent_order: dict[str, dict[int, int]] = {}  # band -> token -> when sent (a counter)
        self._sends = 0
        self._last_now = self.hugstore.latest_time()  # a clock set back while the app was closed, too

    def storm_rule(self) -> tuple[int, float]:
        """(max buzzes, per rolling window in s) on each band; stored, default 3 a minute."""
        rule = self.hugstore.setting("storm")
        if rule is None:
            return STORM_MAX_BUZZES, STORM_WINDOW_S
        return int(rule["max_buzzes"]), float(rule["window_s"])

    def set_storm_rule(self, max_buzzes: int, window_s: float) -> None:
        """Buzz each band at most ``max_buzzes`` times per rolling ``window_s``; presses beyond that
        fold into the next allowed buzz, every one counted."""
        if max_buzzes < 1 or not window_s > 0:
            raise HugError("a storm rule needs at least one buzz per positive window")
        self.hugstore.set_setting("storm", {"max_buzzes": max_buzzes, "window_s": window_s})

    def band_connected(self, band: str) -> None:
        """Plays the band has not confirmed are resent at once on the next pass."""
        self._reconnected.add(band)

    def felt(self, band: str, token: int) -> None:
        """The band played ``token``: a Play it was sent before and has not confirmed had its Felt
        lost (the band plays in order), so it is resent on the next pass and answered from the band's
        memory, which holds only the last few tokens."""
        order = self._sent_order.get(band, {})
        at = order.pop(token, None)
        if at is not None and any(t < at for t in order.values()):
            self._reconnected.add(band)

    def _tz(self) -> tzinfo:
        return self.tz if self.tz is not None else local_timezone()

    async def deliver(self) -> float | None:
        """Send due plays to connected bands; return when something next becomes due."""
        now = self.clock()
        wakes: list[float] = []
        if now < self._last_now:  # the wall clock was set back: what "happened later" happened now
            self.hugstore.clock_went_back(now, self._last_now)
        self._last_now = now
        by_band: dict[str, list[Play]] = {}
        for p in self.hugstore.open_plays():
            by_band.setdefault(p.band, []).append(p)
        for band in set(self._sent_order) - set(by_band):
            del self._sent_order[band]  # nothing open there: nothing to resend
        tz = self._tz()
        for band, plays in by_band.items():
            schedule = self.hugstore.schedule(self.wearer_of(band))
            decisions: dict[str, Decision] = {}
            held: list[float] = []
            for p in plays:  # each due hug, decided now against the quiet hours
                if p.state == "pending" and p.hug is not None and p.not_before <= now:
                    decision = schedule.decide(p.age_from, now, tz)
                    if decision.action is Action.HOLD_UNTIL and decision.until is not None:
                        # held on every band, linked or not: its age counts from the release
                        self.hugstore.hold(p.hug_id, band, decision.until)
                        held.append(decision.until)
                    else:
                        decisions[p.hug_id] = decision
            if self.bands.connected(band):  # a band away: the rest waits for its link
                wakes += held
                wakes += await self._deliver_to(band, plays, decisions, now)
            elif decisions or any(_due_unheld(p, now) for p in plays):
                self.bands.want(band)
        return min(wakes) if wakes else None

    async def _deliver_to(
        self, band: str, plays: list[Play], decisions: dict[str, Decision], now: float
    ) -> list[float]:
        wakes: list[float] = []
        resend_now = band in self._reconnected
        self._reconnected.discard(band)
        in_flight: set[int] = set()
        order = self._sent_order.setdefault(band, {})
        for token in set(order) - {p.token for p in plays if p.state == "sent"}:
            del order[token]  # felt or given up elsewhere: nothing to resend
        for p in plays:
            if p.state != "sent":
                continue
            first = p.token not in in_flight  # folded hugs share their play's token
            in_flight.add(p.token)
            due = now if resend_now else p.sent_at + RESEND_PLAY_AFTER_S
            if due > now:
                wakes.append(due)
            elif first and len(in_flight) <= MAX_PLAYS_IN_FLIGHT:  # no more than the band can queue
                same = [q for q in plays if q.state == "sent" and q.token == p.token]
                await self._play(band, same, p.spec, now)
        waiting: list[tuple[Play, Hug, Decision]] = []
        for p in plays:
            if p.state != "pending":
                continue
            if p.not_before > now:
                wakes.append(p.not_before)
            elif len(in_flight) >= MAX_PLAYS_IN_FLIGHT:
                continue  # the band's queue is full: a Felt wakes us
            elif p.hug is None:  # a felt tick: not a hug, never held or folded
                await self._play(band, [p], p.spec, now)
                in_flight.add(p.token)
            elif p.hug_id in decisions:  # not held just now
                waiting.append((p, p.hug, decisions[p.hug_id]))
        if len(in_flight) < MAX_PLAYS_IN_FLIGHT:
            wakes += await self._play_hugs(band, waiting, now)
        return wakes

    async def _play_hugs(
        self, band: str, waiting: list[tuple[Play, Hug, Decision]], now: float
    ) -> list[float]:
        groups: dict[tuple[str, bool], list[tuple[Play, Hug]]] = {}
        for p, hug, decision in waiting:
            if decision.action is Action.MISSED:
                self._missed(p, hug)
            else:
                groups.setdefault((hug.sender, decision.action is Action.PLAY_GENTLE), []).append((p, hug))
        max_buzzes, window_s = self.storm_rule()
        buzzes = self.hugstore.recent_buzzes(band, now - window_s)
        for (sender, gentle), items in groups.items():
            if len(buzzes) >= max_buzzes:  # a storm: fold the rest into the next allowed buzz
                return [buzzes[-max_buzzes] + window_s]
            merged, batch = items[0][1], [items[0][0]]
            for p, hug in items[1:]:
                if (
                    len(merged.folded) + len(hug.ids()) > hugs.MAX_FOLDED
                    or merged.count + hug.count > hugs.MAX_COUNT
                ):
                    break  # one buzz carries what one hug can: the rest plays in the next one
                merged = hugs.fold(merged, hug)
                batch.append(p)
            spec = hugs.play_for(merged, self._signature(items[0][0].link_id, sender), gentle=gentle)
            await self._play(band, batch, spec, now)
            buzzes.append(now)
            if len(batch) < len(items):
                return [now]  # the rest of this sender's hugs: on the next pass
        return []

    async def _play(self, band: str, plays: list[Play], spec: PlaySpec, now: float) -> None:
        token = plays[0].token
        try:
            await self.bands.play(band, spec, token)
        except Exception as exc:  # noqa: BLE001  (any failure: the play stays pending and is retried)
            log.info("play on %s not sent: %s", band, exc)
            return
        self.hugstore.mark_sent(plays, spec, token, now)
        self._sends += 1
        self._sent_order.setdefault(band, {})[token] = self._sends

    def _missed(self, play: Play, hug: Hug) -> None:
        self.hugstore.mark_play_missed(play.hug_id, play.band, self.clock())
        name = sender_name(self.store, play.link_id, hug.sender)
        self.notifier.notify(f"Missed hug from {name}", f"{name} sent a hug while you were away")
        self.on_change()

    def _signature(self, link_id: str, sender: str) -> int:
        """The sender's signature in the circle the hug came through (between two bands here: in
        any circle the wearer is in; 0 if none)."""
        if link_id == LOCAL_LINK:
            member = rs.person(self.store, sender)
        else:
            member = rs.member(self.store, link_id, sender)
        return member.signature if member is not None else 0
