"""Hug semantics, pure: what a hug is, how it buzzes, and what the sender hears back.

Nothing here does I/O, sleeps or reads a clock: every decision takes an explicit ``now`` (UTC epoch
seconds, float). The router and playback call these and perform what they decide (store, relay,
play, notify). Quiet hours are in :mod:`hugapp.core.schedule`, the storm rule in
:mod:`hugapp.core.playback`.

- :class:`Hug`: one hug as it travels between phones (``to_payload``/``from_payload``, strict).
- :func:`fold`: a hug standing also for another (storms and holds fold, every press counted).
- :func:`play_for`: the band pattern for a hug (:class:`PlaySpec`, ready for a ``Play`` frame).
- :class:`HugBackTracker`: a press within 10 s of a hug being played answers it (once).
- :class:`Receipt` and :func:`advance`: SENT -> DELIVERED -> FELT, whatever order receipts arrive in.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from hugproto.frames import GESTURE_SQUEEZE, GESTURE_TAP, MAX_TAPS
from hugproto.patterns import BIG_HUG, HUG, HUG_BACK, MAX_REPEAT, NUM_SIGNATURES

PAYLOAD_VERSION = 1
MAX_ID_LEN = 64
MAX_COUNT = 100_000  # presses one hug may stand for; far beyond any storm a person can make
MAX_FOLDED = 1_000  # ids of folded hugs carried by one hug (for their receipts)
MAX_DURATION_MS = 0xFFFF  # a Press frame's u16

FULL_INTENSITY = 255
FELT_FLOOR = 64  # weakest intensity the router ever asks for: still clearly felt (= the softest squeeze)
GENTLE_PERCENT = 35
GENTLE_MAX_REPEAT = 2

HUG_BACK_WINDOW_S = 10.0

_ID_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,%d}" % MAX_ID_LEN)
_GESTURE_NAMES = {GESTURE_TAP: "tap", GESTURE_SQUEEZE: "squeeze"}
_GESTURES_BY_NAME = {name: g for g, name in _GESTURE_NAMES.items()}
_PAYLOAD_KEYS = frozenset(
    {"v", "id", "from", "gesture", "value", "duration_ms", "pressed_at", "count", "back_of", "folded"}
)
_OPTIONAL_KEYS = frozenset({"back_of", "folded"})


def message_id(hug_id: str, kind: str) -> str:
    """A relay message id derived from a hug id (every companion derives the same one)."""
    return hashlib.sha256(f"{kind}|{hug_id}".encode()).hexdigest()[:32]


class HugError(Exception):
    """A hug, a setting or a payload is invalid. The message says what and why; nothing changed."""


# --------------------------------------------------------------------------------------------------
# The hug


def check_id(what: str, value: object) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise HugError(f"{what} must be 1..{MAX_ID_LEN} characters of [A-Za-z0-9_.:-], got {value!r:.80}")
    return value


def check_int(what: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HugError(f"{what} must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise HugError(f"{what} must be {lo}..{hi}, got {value}")
    return value


def check_time(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HugError(f"{what} must be a number (UTC epoch seconds), got {type(value).__name__}")
    try:
        t = float(value)
    except OverflowError:  # an integer beyond any float, e.g. 10**400 in JSON
        raise HugError(f"{what} is out of range") from None
    if not math.isfinite(t) or t <= 0:
        raise HugError(f"{what} must be a positive finite time, got {value!r}")
    return t


@dataclass(frozen=True, slots=True)
class Hug:
    """One hug: a press (or several folded into one) from ``sender``.

    ``value`` is the tap count (1..MAX_TAPS) for a tap, the intensity (1..255) for a squeeze.
    ``count`` is how many presses this hug stands for (more than 1 once a storm or a hold folded
    presses into it); ``folded`` holds the ids of the hugs folded into this one, so their receipts
    can be answered too. ``hug_back_of`` is the id of the hug this one answers.
    Construction validates every field and raises :class:`HugError`.
    """

    hug_id: str
    sender: str
    gesture: int
    value: int
    duration_ms: int
    pressed_at: float
    count: int = 1
    hug_back_of: str | None = None
    folded: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        check_id("hug id", self.hug_id)
        check_id("sender", self.sender)
        if isinstance(self.gesture, bool) or self.gesture not in _GESTURE_NAMES:
            raise HugError(f"unknown gesture {self.gesture!r}")
        if self.gesture == GESTURE_TAP:
            check_int("tap count", self.value, 1, MAX_TAPS)
        else:
            check_int("squeeze intensity", self.value, 1, 255)
        check_int("duration_ms", self.duration_ms, 0, MAX_DURATION_MS)
        object.__setattr__(self, "pressed_at", check_time("pressed_at", self.pressed_at))
        check_int("count", self.count, 1, MAX_COUNT)
        if self.hug_back_of is not None:
            check_id("hug_back_of", self.hug_back_of)
        if not isinstance(self.folded, tuple):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise HugError("folded must be a tuple of hug ids")
        if len(self.folded) > MAX_FOLDED:
            raise HugError(f"a hug carries at most {MAX_FOLDED} folded ids, got {len(self.folded)}")
        for fid in self.folded:
            check_id("folded hug id", fid)
        if self.count < 1 + len(self.folded):
            raise HugError(f"count {self.count} is less than the {1 + len(self.folded)} hugs it stands for")
        if len({self.hug_id, *self.folded}) != 1 + len(self.folded):
            raise HugError("folded ids must be distinct and differ from the hug id")

    def ids(self) -> tuple[str, ...]:
        """Every hug id this hug answers for (its own first)."""
        return (self.hug_id, *self.folded)

    def to_payload(self) -> dict[str, Any]:
        """A JSON-ready dict for the relay (sealed end to end by the envelope layer)."""
        payload: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "id": self.hug_id,
            "from": self.sender,
            "gesture": _GESTURE_NAMES[self.gesture],
            "value": self.value,
            "duration_ms": self.duration_ms,
            "pressed_at": self.pressed_at,
            "count": self.count,
        }
        if self.hug_back_of is not None:
            payload["back_of"] = self.hug_back_of
        if self.folded:
            payload["folded"] = list(self.folded)
        return payload

    @classmethod
    def from_payload(cls, payload: object) -> Hug:
        """The hug in a relay payload. Anything unexpected raises :class:`HugError`."""
        if not isinstance(payload, Mapping):
            raise HugError(f"a hug payload must be an object, got {type(payload).__name__}")
        items: dict[object, object] = dict(payload)  # pyright: ignore[reportUnknownArgumentType]
        for key in items:
            if not isinstance(key, str) or key not in _PAYLOAD_KEYS:
                raise HugError(f"unexpected field {key!r:.40} in hug payload")
        missing = sorted(_PAYLOAD_KEYS - _OPTIONAL_KEYS - set(items))
        if missing:
            raise HugError(f"hug payload lacks {', '.join(missing)}")
        if items["v"] != PAYLOAD_VERSION or isinstance(items["v"], bool):
            raise HugError(f"unsupported hug payload version {items['v']!r:.20}")
        gesture_name = items["gesture"]
        if not isinstance(gesture_name, str) or gesture_name not in _GESTURES_BY_NAME:
            raise HugError(f"unknown gesture {gesture_name!r:.40}")
        folded_raw = items.get("folded", [])
        if not isinstance(folded_raw, list):
            raise HugError("folded must be a list of hug ids")
        folded_list: list[object] = folded_raw  # pyright: ignore[reportUnknownVariableType]
        if len(folded_list) > MAX_FOLDED:
            raise HugError(f"a hug carries at most {MAX_FOLDED} folded ids, got {len(folded_list)}")
        back_of = items.get("back_of")
        return cls(
            hug_id=check_id("hug id", items["id"]),
            sender=check_id("sender", items["from"]),
            gesture=_GESTURES_BY_NAME[gesture_name],
            value=check_int("value", items["value"], 1, 255),
            duration_ms=check_int("duration_ms", items["duration_ms"], 0, MAX_DURATION_MS),
            pressed_at=check_time("pressed_at", items["pressed_at"]),
            count=check_int("count", items["count"], 1, MAX_COUNT),
            hug_back_of=None if back_of is None else check_id("back_of", back_of),
            folded=tuple(check_id("folded hug id", f) for f in folded_list),
        )


def fold(into: Hug, other: Hug) -> Hug:
    """``into`` standing also for ``other``: counts add up, ``other``'s ids join ``folded``.

    The folded hug keeps ``into``'s id (the first of the run), takes the latest press's gesture,
    value and time, and stays a hug back if either was one. Folding the same hug twice is an error.
    """
    if into.sender != other.sender:
        raise HugError(f"cannot fold a hug from {other.sender} into one from {into.sender}")
    if set(into.ids()) & set(other.ids()):
        raise HugError(f"hug {other.hug_id} is already part of hug {into.hug_id}")
    count = into.count + other.count
    if count > MAX_COUNT:
        raise HugError(f"folded count {count} exceeds {MAX_COUNT}")
    latest = other if other.pressed_at >= into.pressed_at else into
    return replace(
        into,
        gesture=latest.gesture,
        value=latest.value,
        duration_ms=latest.duration_ms,
        pressed_at=latest.pressed_at,
        count=count,
        hug_back_of=into.hug_back_of if into.hug_back_of is not None else other.hug_back_of,
        folded=(*into.folded, *other.ids()),
    )


# --------------------------------------------------------------------------------------------------
# How a hug buzzes


@dataclass(frozen=True, slots=True)
class PlaySpec:
    """The fields of a band ``Play`` frame: pattern, sender signature, intensity 1..255, repeat 1..5."""

    pattern: int
    signature: int
    intensity: int
    repeat: int


def play_for(hug: Hug, signature: int, gentle: bool = False) -> PlaySpec:
    """How ``hug`` buzzes on the recipient's band.

    - a hug back plays HUG_BACK, a squeeze BIG_HUG, a tap HUG;
    - a squeeze's intensity is its strength (never below FELT_FLOOR); taps play at full intensity;
    - repeat: a tap count is replayed; a hug standing for N presses plays N times; the larger of the
      two wins, capped at MAX_REPEAT (the count itself is shown, not buzzed);
    - ``gentle`` (quiet hours in gentle mode) lowers the intensity to GENTLE_PERCENT, never below
      FELT_FLOOR, and plays at most GENTLE_MAX_REPEAT times.
    """
    check_int("signature", signature, 0, NUM_SIGNATURES - 1)
    if hug.hug_back_of is not None:
        pattern = HUG_BACK
    elif hug.gesture == GESTURE_SQUEEZE:
        pattern = BIG_HUG
    else:
        pattern = HUG
    intensity = max(hug.value, FELT_FLOOR) if hug.gesture == GESTURE_SQUEEZE else FULL_INTENSITY
    taps = hug.value if hug.gesture == GESTURE_TAP else 1
    repeat = min(max(taps, hug.count), MAX_REPEAT)
    if gentle:
        intensity = max(intensity * GENTLE_PERCENT // 100, FELT_FLOOR)
        repeat = min(repeat, GENTLE_MAX_REPEAT)
    return PlaySpec(pattern, signature, intensity, repeat)


# --------------------------------------------------------------------------------------------------
# Hug back


class HugBackTracker:
    """Remembers the last hug played on one band; a press soon after it answers it.

    ``classify_press(now)`` returns the id of the hug to answer when the press came within
    HUG_BACK_WINDOW_S (inclusive) after that hug was played, else None. Each played hug is answered
    at most once; a press before the hug was played answers nothing.
    """

    def __init__(self, window_s: float = HUG_BACK_WINDOW_S) -> None:
        if not window_s > 0:
            raise HugError(f"hug-back window must be positive, got {window_s}")
        self.window_s = window_s
        self._last: tuple[str, float] | None = None
        self._answered = False

    @property
    def last(self) -> tuple[str, float] | None:
        """(hug_id, played_at) of the last hug played on this band, or None."""
        return self._last

    def played(self, hug_id: str, played_at: float) -> None:
        """The band played (buzzed) hug ``hug_id`` at ``played_at``."""
        check_id("hug id", hug_id)
        if self._last is not None and self._last[0] == hug_id:
            self._last = (hug_id, played_at)  # the same hug again (a resend): still one answer
            return
        self._last = (hug_id, played_at)
        self._answered = False

    def classify_press(self, now: float) -> str | None:
        """The hug id a press at ``now`` answers, or None (then it is a new hug)."""
        if self._last is None or self._answered:
            return None
        hug_id, played_at = self._last
        if not 0 <= now - played_at <= self.window_s:
            return None
        self._answered = True
        return hug_id


# --------------------------------------------------------------------------------------------------
# Receipts


class Receipt(IntEnum):
    """What the sender knows about a hug it sent. Only ever moves forward."""

    SENT = 0
    DELIVERED = 1  # the partner's phone has it
    FELT = 2  # the partner's band played it (the sender's band ticks)


def advance(state: Receipt, event: Receipt) -> Receipt:
    """The state after receipt ``event`` (DELIVERED or FELT) arrives; out of order or repeated
    receipts never move a hug backwards (felt, then delivered, stays FELT)."""
    if event is Receipt.SENT:
        raise HugError("SENT is not a receipt; receipts are DELIVERED or FELT")
    return Receipt(max(state, event))
