"""What this installed app is, chosen on the phone: a family phone (the companion's screens, the
default) or the classroom hub (the hub's screen). Kivy-free; the one owner of where the choice is kept.

    data = app_data()                  # the app's data folder, the store's
    read_mode(data)                    # "family" | "hub"
    set_mode(data, HUB_MODE)           # from the app's next start (android_main reads it)

The choice is a small text file, ``mode``, in the app's data folder. The hub keeps its enrolments in
``hub_folder(data)``, apart from the family's data, which stays on the phone unused in hub mode.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from hugapp.core.store import default_path

log = logging.getLogger("hugapp.ui.phonemode")

Mode = Literal["family", "hub"]
FAMILY_MODE: Mode = "family"
HUB_MODE: Mode = "hub"
MODE_FILE = "mode"


def app_data() -> Path:
    """The app's data folder on this device (where the family's store lives)."""
    return default_path().parent


def hub_folder(data: Path) -> Path:
    """Where this phone keeps the hub's enrolments and name in hub mode."""
    return data / "hub"


def read_mode(data: Path) -> Mode:
    """What this phone is. No marker, or one that is unreadable or holds anything but a mode, reads
    as a family phone: a damaged file never keeps the family app from opening."""
    try:
        text = (data / MODE_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return FAMILY_MODE
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("phone mode unreadable (%r): a family phone", exc)
        return FAMILY_MODE
    if text == HUB_MODE:
        return HUB_MODE
    if text != FAMILY_MODE:
        log.warning("phone mode %r is not one: a family phone", text[:40])
    return FAMILY_MODE


def set_mode(data: Path, mode: str) -> None:
    """Keep the choice for the app's next start; ValueError (and nothing written) for anything but
    "family" or "hub". Written whole or not at all (a new file renamed over the old one)."""
    if mode not in (FAMILY_MODE, HUB_MODE):
        raise ValueError(f"{mode!r} is not a phone mode: a phone is {FAMILY_MODE!r} or {HUB_MODE!r}")
    data.mkdir(parents=True, exist_ok=True)
    path = data / MODE_FILE
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(mode + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
