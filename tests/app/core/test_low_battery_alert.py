"""The low-battery notification is raised where a band's battery reading arrives (the companion),
once per crossing of the app's alert level; building the window's snapshot never raises it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hugapp.core import uisettings
from hugapp.core.bandlink import BleConfig
from hugapp.core.companion import Companion
from hugapp.core.notify import DesktopNotifier
from hugapp.core.store import Store
from hugapp.ui.controller import Controller

BAND = "C0:FF:EE:00:00:01"


def test_low_battery_is_told_once_per_crossing_and_never_by_a_snapshot(tmp_path: Path) -> None:
    async def main() -> None:
        notifier = DesktopNotifier()
        store = Store(tmp_path / "companion.sqlite3")
        store.save_band(BAND, "Mia's band", bytes(16))
        phone = Companion(store, BleConfig(), None, name="Mum", notifier=notifier)
        phone.start()
        await phone.stop()  # no radio here: the link object is driven by hand below
        link = phone.links[BAND]

        def alerts() -> list[str]:
            return [s.message for s in notifier.shown if s.title == "Band battery low"]

        link._battery_reading(50)  # pyright: ignore[reportPrivateUsage]
        assert alerts() == []
        link._battery_reading(19)  # pyright: ignore[reportPrivateUsage]
        assert alerts() == ["Mia's band is at 19% — charge it tonight"]
        link._battery_reading(12)  # pyright: ignore[reportPrivateUsage] - still low: not again
        ui = Controller(phone)
        for _ in range(3):
            assert ui.snapshot().bands.bands[0].low_battery
        assert len(alerts()) == 1
        assert store.bands()[0].battery == 12

        link._battery_reading(80)  # pyright: ignore[reportPrivateUsage] - charged, then low again
        link._battery_reading(20)  # pyright: ignore[reportPrivateUsage]
        assert len(alerts()) == 2

        ui.settings.set_low_battery("10")  # the app's alert level, read where the reading arrives
        assert uisettings.low_battery_percent(uisettings.load(store)) == 10
        link._battery_reading(80)  # pyright: ignore[reportPrivateUsage]
        link._battery_reading(15)  # pyright: ignore[reportPrivateUsage]
        assert len(alerts()) == 2
        assert not ui.snapshot().bands.bands[0].low_battery
        link._battery_reading(9)  # pyright: ignore[reportPrivateUsage]
        assert alerts()[-1] == "Mia's band is at 9% — charge it tonight"
        await ui.close()
        store.close()

    asyncio.run(main())
