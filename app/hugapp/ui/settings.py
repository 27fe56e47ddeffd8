"""Settings: my name, each sender's signature, quiet hours (yours, or those of a person without a phone
whose band this phone owns), the low-battery alert level, and making this phone the class hub."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hugapp.core import uisettings
from hugapp.core.coowners import served_wearers
from hugapp.core.hugs import HugError
from hugapp.core.schedule import DayType, Schedule
from hugapp.core.store import StoreError
from hugapp.ui.phonemode import HUB_MODE, set_mode
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

YOU = "You"  # the quiet-hours chooser's entry for this phone's own member


@dataclass(frozen=True)
class SettingsView:
    quiet_for: str  # whose quiet hours the fields below show: YOU, or a wearer's name
    quiet_choices: tuple[str, ...]  # YOU, then each person without a phone whose band is owned here
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
        self.quiet_for = ""  # whose quiet hours: "" for you, or a wearer's member id

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

    def quiet_choices(self) -> dict[str, str]:
        """The quiet-hours chooser: label -> member id ("" for you), each label once."""
        api = self.shared.api
        out = {YOU: ""}
        for w in served_wearers(api.store, api.identity().member_id):
            label, n = w.name, 1
            while label in out:
                n += 1
                label = f"{w.name} ({n})"
            out[label] = w.member_id
        return out

    def _quiet_for(self, choices: dict[str, str]) -> tuple[str, str]:
        """Whose quiet hours the screen shows and saves (label, member id): the one chosen, or you
        when they are no longer served here (their band was forgotten)."""
        for label, member_id in choices.items():
            if member_id == self.quiet_for:
                return label, member_id
        return YOU, ""

    def choose_quiet_for(self, label: str) -> None:
        """Show (and save) the quiet hours of the person chosen by their label."""
        member_id = self.quiet_choices().get(label)
        if member_id is None:
            self.shared.fail(f"{label} has no band on this phone")
            return
        self.quiet_for = member_id
        self.shared.error = ""
        self.shared.notice = ""
        self.shared.changed()

    def save_schedule(self, school_days: str, school: str, home: str, overrides: str) -> bool:
        s = self.shared
        label, wearer = self._quiet_for(self.quiet_choices())
        try:
            ov = parse_overrides(overrides)
            old = s.api.schedule(wearer or None)
            schedule = Schedule(
                {DayType.SCHOOL: parse_windows(school), DayType.HOME: parse_windows(home)},
                parse_school_days(school_days),
                ov,
                old.missed_after_s,
            )
        except (ValueError, HugError, StoreError) as exc:
            s.fail(describe_error(exc))
            return False

        async def run() -> None:
            await s.api.set_schedule(schedule, wearer or None)
            s.error = ""
            s.notice = "Quiet hours saved" if not wearer else f"Quiet hours saved for {label}"

        s.spawn(run(), "save quiet hours")
        return True

    def set_low_battery(self, text: str) -> None:
        if not text.strip().isdigit() or not 5 <= int(text) <= 80:
            self.shared.fail("The low-battery alert is a percentage between 5 and 80")
            return
        self.set_ui_setting("low_battery", int(text))

    def use_as_hub(self) -> None:
        """From the app's next start this phone is the class hub (``phonemode``); until then it is
        still this family's phone."""
        s = self.shared
        try:
            set_mode(s.api.store.path.parent, HUB_MODE)  # the app's data folder: the store's
        except OSError as exc:
            s.fail(f"Could not make this phone the class hub ({exc.strerror or exc})")
            return
        s.error = ""
        s.notice = "The class hub from the next start: close Hug Button and open it again"
        s.changed()

    def view(self, low_battery_percent: int) -> SettingsView:
        choices = self.quiet_choices()
        label, wearer = self._quiet_for(choices)
        schedule = self.shared.api.schedule(wearer or None)
        return SettingsView(
            label,
            tuple(choices),
            school_days_text(schedule.school_days),
            windows_text(schedule.windows[DayType.SCHOOL]),
            windows_text(schedule.windows[DayType.HOME]),
            overrides_text(schedule.overrides),
            low_battery_percent,
        )
