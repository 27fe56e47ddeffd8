"""The classroom hub's own screen (Kivy), for the hub's operator on a laptop or an old phone: the
hub's name, its status, a code (and QR) a parent types to enrol a band, and the bands it serves, by
enrolment id: no family data, as the hub has none.

    await run_hub_ui(folder, broker_url, BleConfig())   # `hugbutton hub --data DIR --broker URL ui`

The same :class:`Hub` as `hugbutton hub run` serves on the loop Kivy runs on
(``App.async_run(async_lib="asyncio")``). The screen copies :class:`HubControl`'s snapshot into its
Kivy properties, at most once a frame (a trigger) and every second (the code's countdown, the hub's
counts). Nothing here is platform-specific: a phone in hub mode (``android_main``) runs
:func:`run_hub_ui` too, given the app's data folder, and the screen then offers to make it a family
phone again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hugapp.core.bandlink import BleConfig
from hugapp.core.hub import Hub, HubStore
from hugapp.core.linking import HUB, qr_png
from hugapp.ui.app import KV_DIR, run_window, save_screenshot, window_size
from hugapp.ui.hubcontrol import HubControl, HubSnapshot
from hugapp.ui.screens import make, png_texture

from kivy.app import App  # isort: skip
from kivy.clock import Clock  # isort: skip
from kivy.factory import Factory  # isort: skip
from kivy.lang import Builder  # isort: skip
from kivy.properties import (  # isort: skip
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout  # isort: skip

REFRESH_EVERY_S = 1.0  # the code's countdown; the hub's counts change every couple of seconds


class HubRoot(BoxLayout):
    title = StringProperty("")
    hub_name = StringProperty("")
    online = BooleanProperty(False)
    broker = StringProperty("")
    counts = StringProperty("")
    bands = ListProperty([])
    code = StringProperty("")
    expires_in = NumericProperty(0)
    message = StringProperty("")
    offering = BooleanProperty(False)  # a code is being made or offered: its card instead of Enrol
    error = StringProperty("")
    notice = StringProperty("")
    phone_hub = BooleanProperty(False)  # the app's hub mode: "Use as a family phone again"
    qr_texture = ObjectProperty(None, allownone=True)

    def show(self, snap: HubSnapshot) -> None:
        self.title = snap.title
        self.hub_name = snap.name
        self.online = snap.online
        self.broker = snap.broker
        self.counts = "\n".join(snap.counts)
        self.bands = [{"enrolment_id": b.enrolment_id, "added": b.added} for b in snap.bands]
        self.code = snap.code
        self.expires_in = snap.expires_in
        self.message = snap.message
        self.offering = bool(snap.message)
        self.error = snap.error
        self.notice = snap.notice
        self.phone_hub = snap.phone_hub

    def on_kv_post(self, _base: Any) -> None:
        # strong references (``ids`` holds weak proxies): one of the two is always out of the tree (a
        # hidden widget in a layout would still take touches meant for its neighbours)
        self._enrol_button = self.ids.enrol_button.__self__
        self._code_card = self.ids.code_card.__self__
        self.ids.enrol_box.remove_widget(self._code_card)

    def on_offering(self, _w: Any, offering: bool) -> None:
        box = self.ids.enrol_box
        box.clear_widgets()
        box.add_widget(self._code_card if offering else self._enrol_button)

    def on_hub_name(self, _w: Any, name: str) -> None:
        field = self.ids.name_input  # the saved name; a refused one stays typed, to be fixed
        field.text = name
        field.cursor = (0, 0)  # from its start, whatever was typed before

    def on_code(self, _w: Any, code: str) -> None:
        self.qr_texture = png_texture(qr_png(code, scale=8, purpose=HUB)) if code else None

    def on_bands(self, _w: Any, bands: list[dict[str, Any]]) -> None:
        box = self.ids.bands_box
        box.clear_widgets()
        for b in bands:
            box.add_widget(make("EnrolledBandRow", **b))
        if not bands:
            box.add_widget(make("HintLabel", text="No band enrolled yet — tap Enrol a band"))

    def confirm_remove(self, enrolment_id: str) -> None:
        make("RemoveBandPopup", enrolment_id=enrolment_id).open()

    def confirm_family_phone(self) -> None:
        make("FamilyPhonePopup").open()


class HubApp(App):
    """The hub's window over its :class:`HubControl`."""

    title = "Hug Button hub"

    def __init__(self, control: HubControl, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # pyright: ignore[reportUnknownMemberType] - Kivy is untyped
        self.control = control
        self.snapshot: HubSnapshot | None = None
        self._trigger: Any = None
        self._ticker: Any = None

    def build(self) -> Any:
        for name in ("main", "hubscreen"):  # main.kv: the pieces every screen shares
            path = str(KV_DIR / f"{name}.kv")
            if path not in Builder.files:
                Builder.load_file(path)
        root = Factory.HubRoot()
        self.root = root
        self._trigger = Clock.create_trigger(self.refresh, -1)
        self.control.on_update = self._trigger
        self._ticker = Clock.schedule_interval(self._tick, REFRESH_EVERY_S)
        root.on_bands(root, [])  # the hint, until a band is enrolled
        self.refresh()
        return root

    def _tick(self, _dt: float) -> None:
        self._trigger()

    def refresh(self, *_args: Any) -> None:
        snap = self.control.snapshot()
        self.snapshot = snap
        self.root.show(snap)

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self.control.on_update = lambda: None

    def screenshot(self, path: Path) -> Path:
        return save_screenshot(path)


async def run_hub_ui(
    folder: Path, broker_url: str, config: BleConfig, app_ready: Any = None, app_data: Path | None = None
) -> None:
    """Serve the enrolled bands with the hub's screen open, until the window is closed.
    ``app_ready(app)`` is called once the app exists (tests drive it from there); ``app_data``, the
    app's data folder when this is a phone's hub mode (``phonemode``)."""
    store = HubStore(folder)
    try:
        hub = Hub(store, broker_url, config)
        control = HubControl(hub, broker_url, app_data=app_data)
        serving = asyncio.ensure_future(hub.run())
        control.watch(serving)
        window_size()
        try:
            await run_window(HubApp(control), app_ready)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            await control.close()
    finally:
        store.close()
