"""The app's words: errors as sentences a person can act on, and settings as text they edit."""

from __future__ import annotations

from datetime import date
from datetime import time as dtime

from hugapp.core import bandlink, linking
from hugapp.core.bandlink import LinkState
from hugapp.core.hugs import HugError
from hugapp.core.relay import RelayError
from hugapp.core.schedule import DayType, QuietMode, QuietWindow
from hugapp.core.store import StoreError
from hugapp.window_link import WindowLinkError

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def describe_error(exc: BaseException) -> str:
    """A sentence a person can act on, for any error an action can raise."""
    text = str(exc).strip()
    low = text.lower()
    if isinstance(exc, bandlink.BandLinkError | linking.LinkError | WindowLinkError):
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


def bars(rssi: int) -> int:
    """Signal bars, 0..4."""
    return 4 if rssi >= -55 else 3 if rssi >= -67 else 2 if rssi >= -78 else 1 if rssi >= -90 else 0


def ago(now: float, then: float) -> str:
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


def overrides_text(overrides: dict[date, DayType]) -> str:
    return ", ".join(f"{d.isoformat()} {t.value}" for d, t in sorted(overrides.items()))


def parse_overrides(text: str) -> dict[date, DayType]:
    """The inverse of :func:`overrides_text`: ``2025-12-24 home, ...``."""
    out: dict[date, DayType] = {}
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        words = part.split()
        try:
            out[date.fromisoformat(words[0])] = DayType(words[1].lower())
        except (ValueError, IndexError, KeyError):
            raise ValueError(f"'{part}' isn't a day override — write it like 2025-12-24 home") from None
    return out
