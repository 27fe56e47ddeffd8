"""The app's own settings (child mode, parent PIN, low-battery level): one JSON setting, ``ui``, kept
by ``HugStore``. The window writes them; the companion reads the low-battery level when a band's
battery reading arrives."""

from __future__ import annotations

from typing import Any, cast

from hugapp.core.hugstore import HugStore
from hugapp.core.store import Store

KEY = "ui"
LOW_BATTERY_DEFAULT = 20  # percent


def load(store: Store) -> dict[str, Any]:
    value = HugStore(store).setting(KEY)
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {}


def save(store: Store, settings: dict[str, Any]) -> None:
    HugStore(store).set_setting(KEY, settings)


def low_battery_percent(settings: dict[str, Any]) -> int:
    """The alert level in ``settings`` (:func:`load`'s)."""
    return int(settings.get("low_battery", LOW_BATTERY_DEFAULT))


def is_low(battery: int | None, low_percent: int) -> bool:
    """A known battery level (a band reports 0 when it has none yet) at or below the alert level."""
    return battery is not None and 0 < battery <= low_percent
