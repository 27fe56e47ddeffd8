"""The classroom hub in words, for its operator: its status (`hugbutton hub status` and the hub's own
screen, ``hugapp.ui.hubscreen``) and what went wrong. Counts and enrolment ids only: a hub knows no
family."""

from __future__ import annotations

from typing import Any

import aiomqtt
from bleak.exc import BleakError

from hugapp.core.envelope import RelayError
from hugapp.core.hub import RELOAD_S
from hugapp.core.linking import CodeExpired, LinkError


def hub_title(name: str) -> str:
    """What the hub's screen is headed: "Class 2 hub"."""
    return f"{name} hub" if name else "Class hub (no name yet)"


def broker_words(online: bool) -> str:
    return "broker online" if online else "broker NOT reachable"


def status_counts(status: dict[str, Any]) -> list[str]:
    """A running hub's counts (``Hub.status()``), one phrase each; KeyError if it is not a hub's."""
    return [
        f"{status['enrolled']} band(s) enrolled",
        f"{status['heard']} heard in the last minute",
        f"{status['links']} link(s) in use",
        f"{status['queue']} message(s) waiting",
        f"{status['dropped']} dropped",
        f"{status['rejected']} rejected",
    ]


def status_words(status: dict[str, Any] | None, now: float) -> str:
    """The hub's status file in one line; a hub that has not written it lately is not running."""
    if status is None:
        return "not running here yet (no status written)"
    try:
        age = now - float(status["at"])
        broker = broker_words(bool(status["online"]))
        counts = status_counts(status)
    except (KeyError, TypeError, ValueError):
        return "the status file is unreadable: is this a hub's data folder?"
    line = ", ".join(counts[:4]) + "; " + ", ".join(counts[4:])
    if age > 3 * RELOAD_S:
        return f"not running (last seen {int(age)} s ago): {line}"
    return f"running, {broker}: {line}"


def error_words(exc: BaseException, broker: str) -> str:
    """A sentence the operator can act on, for what the hub's screen tried (``broker``: host:port)."""
    text = str(exc).strip()
    if isinstance(exc, CodeExpired):
        return "The code expired before a parent typed it — tap Enrol a band for a new one"
    if isinstance(exc, LinkError | ValueError) and text:
        return text[:1].upper() + text[1:]
    if isinstance(exc, aiomqtt.MqttError | RelayError | OSError):
        return f"Can't reach the broker ({broker}) — check this hub's network; it keeps trying"
    if isinstance(exc, BleakError):
        return f"Bluetooth trouble: {text or 'the radio did not answer'} — is Bluetooth on?"
    return f"Something went wrong ({type(exc).__name__}: {text})"


def stopped_words(exc: BaseException) -> str:
    """Why a hub stopped serving (its broker errors it retries itself: this is its radio, or worse)."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, BleakError | OSError):
        return f"The hub stopped: its Bluetooth failed ({text}) — is Bluetooth on? Then start it again"
    return f"The hub stopped: {type(exc).__name__}: {text} — start it again"
