"""Settings: my name, each sender's signature, quiet hours, the low-battery alert level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hugapp.core import uisettings
from hugapp.core.hugs import HugError
from hugapp.core.schedule import DayType, Schedule
from hugapp.ui.shared import Shared
from hugapp.ui.words import (
    describe_error,
    overrides_text,
    parse_overrides,
    parse_school_days,
    parse_windows,
    school_days_text,
    windows_text,
)


@dataclass(frozen=True)
class SettingsView:
    school_days: str
    school: str  # quiet windows on School days, as text
    home: str
    overrides: str
    low_battery_percent: int


class SettingsActions:
    """Everything the companion uses changes through it; the app's own settings (``uisettings``)
    are written to the store from here, in either layout."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def set_ui_setting(self, key: str, value: Any) -> None:
        store = self.shared.api.store
        settings = uisettings.load(store)
        settings[key] = value
        uisettings.save(store, settings)
        self.shared.changed()

    def rename_me(self, name: str) -> None:
        s = self.shared
        if not name.strip():
            s.fail("A member needs a name")
            return

        async def run() -> None:
            await s.api.rename_me(name.strip())
            s.notice = "Your name is saved; circles see it from the next link"

        s.spawn(run(), "rename me")

    def set_signature(self, member_id: str, signature: int) -> None:
        self.shared.spawn(self.shared.api.set_signature(member_id, signature), "set signature")

    def save_schedule(self, school_days: str, school: str, home: str, overrides: str) -> bool:
        s = self.shared
        try:
            ov = parse_overrides(overrides)
            old = s.api.schedule()
            schedule = Schedule(
                {DayType.SCHOOL: parse_windows(school), DayType.HOME: parse_windows(home)},
                parse_school_days(school_days),
                ov,
                old.missed_after_s,
            )
        except (ValueError, HugError) as exc:
            s.fail(describe_error(exc))
            return False

        async def run() -> None:
            await s.api.set_schedule(schedule)
            s.error = ""
            s.notice = "Quiet hours saved"

        s.spawn(run(), "save quiet hours")
        return True

    def set_low_battery(self, text: str) -> None:
        if not text.strip().isdigit() or not 5 <= int(text) <= 80:
            self.shared.fail("The low-battery alert is a percentage between 5 and 80")
            return
        self.set_ui_setting("low_battery", int(text))

    def view(self, low_battery_percent: int) -> SettingsView:
        schedule = self.shared.api.schedule()
        return SettingsView(
            school_days_text(schedule.school_days),
            windows_text(schedule.windows[DayType.SCHOOL]),
            windows_text(schedule.windows[DayType.HOME]),
            overrides_text(schedule.overrides),
            low_battery_percent,
        )
