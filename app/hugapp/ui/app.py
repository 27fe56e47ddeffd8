"""The Kivy app: screens with state in Kivy properties, on the same asyncio loop as the companion.

    async with companion:
        await run_app(companion)          # Kivy's App.async_run(async_lib="asyncio") beside its tasks

Every change the companion reports (``Companion.on_change``) and every action the controller finishes pulls
one Kivy trigger (``Clock.create_trigger``), so a burst of changes becomes one refresh per frame:
``HugView.refresh`` reads the controller's snapshot and copies it into the screens' properties. Taps
call the controller, which starts background tasks and returns at once: nothing here awaits I/O.

Kivy is untyped: ``typings/kivy`` makes its names explicit ``Any`` for the strict type check.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hugapp.core import linking
from hugapp.core.api import CompanionApi
from hugapp.ui.controller import Controller, Snapshot
from hugapp.ui.home import SQUEEZE_MS

from kivy.animation import Animation  # isort: skip
from kivy.app import App  # isort: skip
from kivy.clock import Clock  # isort: skip
from kivy.core.image import Image as CoreImage  # isort: skip
from kivy.core.window import Window  # isort: skip
from kivy.factory import Factory  # isort: skip
from kivy.lang import Builder  # isort: skip
from kivy.properties import (  # isort: skip
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior  # isort: skip
from kivy.uix.boxlayout import BoxLayout  # isort: skip
from kivy.uix.screenmanager import Screen  # isort: skip
from kivy.uix.widget import Widget  # isort: skip

log = logging.getLogger("hugapp.ui")

KV_DIR = Path(__file__).resolve().parent
SCREENS = ("home", "bands", "link", "history", "settings", "child")
REFRESH_EVERY_S = 1.0  # countdowns and "5 min ago" move even when the companion is quiet


def make(kind: str, **props: Any) -> Any:
    """A widget of a kv dynamic class with its properties set (they exist only after kv applied)."""
    widget = Factory.get(kind)()
    for name, value in props.items():
        setattr(widget, name, value)
    return widget


class ChangeHub:
    """The companion's ``on_change`` before the app exists: forwards to whatever target is set."""

    def __init__(self) -> None:
        self.target: Callable[[], None] = lambda: None

    def __call__(self) -> None:
        self.target()


class HeartButton(ButtonBehavior, Widget):
    """The big heart. A tap sends a hug; held longer than 0.6 s it is a squeeze (``on_hug(ms)``)."""

    scale = NumericProperty(1.0)
    r = NumericProperty(0.0)  # radius of the heart's lobes (kv computes it from size and scale)
    buzz_phase = NumericProperty(0)  # flips while buzzing: the heart shakes left and right
    buzz = NumericProperty(0.0)  # 0..1: how hard it is buzzing (the simulated band's motor)
    lit = BooleanProperty(False)  # the band's LED
    label = StringProperty("")
    pressed_at = NumericProperty(0.0)

    def __init__(self, **kwargs: Any) -> None:
        self.register_event_type("on_hug")
        super().__init__(**kwargs)  # pyright: ignore[reportUnknownMemberType] - Kivy is untyped

    def on_press(self) -> None:
        self.pressed_at = Clock.get_time()
        Animation.cancel_all(self, "scale")
        Animation(scale=0.9, duration=0.08).start(self)

    def on_release(self) -> None:
        held_ms = int((Clock.get_time() - self.pressed_at) * 1000)
        (Animation(scale=1.08, duration=0.1) + Animation(scale=1.0, duration=0.15)).start(self)
        self.dispatch("on_hug", held_ms if held_ms >= SQUEEZE_MS else 0)

    def on_hug(self, squeeze_ms: int) -> None:
        pass


class RootView(BoxLayout):
    hug_view = ObjectProperty(None, allownone=True)
    current_screen = StringProperty("home")
    error = StringProperty("")
    notice = StringProperty("")
    child_mode = BooleanProperty(False)


class HomeScreen(Screen):
    me = StringProperty("")
    members = ListProperty([])
    hug_back_from = StringProperty("")
    bands_summary = StringProperty("")

    def show(self, snap: Snapshot, members: list[dict[str, Any]]) -> None:
        self.me = snap.me
        self.members = members
        self.hug_back_from = snap.home.hug_back_from
        bands = snap.bands.bands
        battery = [f", battery {b.battery}%" if b.battery is not None else "" for b in bands]
        if not bands:
            self.bands_summary = "No band paired — pair one on the Bands screen"
        elif all(b.connected for b in bands):
            self.bands_summary = ", ".join(
                f"{b.name} connected{x}" for b, x in zip(bands, battery, strict=True)
            )
        else:
            self.bands_summary = ", ".join(
                f"{b.name}: {b.state}{x}" for b, x in zip(bands, battery, strict=True)
            )

    def on_members(self, _w: Any, members: list[dict[str, Any]]) -> None:
        box = self.ids.members_box
        box.clear_widgets()
        for m in members:
            box.add_widget(make("MemberCard", **m))
        if not members:
            box.add_widget(
                Factory.HintLabel(text="No one in your circle yet — link a phone on the Link screen")
            )


class BandsScreen(Screen):
    bands = ListProperty([])
    found = ListProperty([])
    scanning = BooleanProperty(False)
    scan_progress = NumericProperty(0.0)
    pairing = StringProperty("")
    countdown = NumericProperty(0)
    pair_message = StringProperty("")

    def show(self, snap: Snapshot, _members: list[dict[str, Any]]) -> None:
        view = snap.bands
        self.bands = [
            {
                "address": b.address,
                "name": b.name,
                "state": b.state,
                "connected": b.connected,
                "battery_text": f"battery {b.battery}%" + (" — low" if b.low_battery else "")
                if b.battery is not None
                else "battery unknown",
                "last_seen": b.last_seen,
            }
            for b in view.bands
        ]
        self.found = [
            {
                "address": f.address,
                "name": f.name,
                "signal": f"{'|' * f.bars}{'.' * (4 - f.bars)}  {f.rssi} dBm",
                "status": f.status,
                "can_pair": not f.paired_here,
                "busy": bool(view.pairing),
            }
            for f in view.found
        ]
        self.scanning = view.scanning
        self.scan_progress = view.scan_progress
        self.pairing = view.pairing
        self.countdown = view.pair_countdown
        self.pair_message = view.pair_message

    def on_bands(self, _w: Any, bands: list[dict[str, Any]]) -> None:
        box = self.ids.bands_box
        box.clear_widgets()
        for b in bands:
            box.add_widget(make("PairedBandRow", **b))
        if not bands:
            box.add_widget(make("HintLabel", text="No band paired yet — tap Find bands"))

    def on_found(self, _w: Any, found: list[dict[str, Any]]) -> None:
        box = self.ids.found_box
        box.clear_widgets()
        for f in found:
            box.add_widget(make("FoundBandRow", **f))

    def rename(self, address: str, name: str) -> None:
        popup = make("RenamePopup", address=address, band_name=name, hug_view=view_of(self))
        popup.open()


class LinkScreen(Screen):
    code = StringProperty("")
    expires_in = NumericProperty(0)
    message = StringProperty("")
    members = ListProperty([])
    qr_texture = ObjectProperty(None, allownone=True)

    def show(self, snap: Snapshot, members: list[dict[str, Any]]) -> None:
        self.code = snap.link.code
        self.expires_in = snap.link.expires_in
        self.message = snap.link.message
        self.members = members

    def on_code(self, _w: Any, code: str) -> None:
        if not code:
            self.qr_texture = None
            return
        png = linking.qr_png(code, scale=8)
        texture: Any = CoreImage(io.BytesIO(png), ext="png").texture
        texture.mag_filter = "nearest"
        self.qr_texture = texture

    def on_members(self, _w: Any, members: list[dict[str, Any]]) -> None:
        box = self.ids.circle_box
        box.clear_widgets()
        for m in members:
            box.add_widget(make("CircleRow", name=m["name"], status=m["status"], initial=m["initial"]))
        if not members:
            box.add_widget(make("HintLabel", text="Your circle is just you so far"))


class HistoryScreen(Screen):
    rows = ListProperty([])
    chart = ListProperty([])

    def show(self, snap: Snapshot, _members: list[dict[str, Any]]) -> None:
        self.rows = [
            {"when": r.when, "text": r.text, "receipt": r.receipt, "direction": r.direction}
            for r in snap.history.rows
        ]
        self.chart = [{"day": d, "sent": s, "received": r} for d, s, r in snap.history.chart]

    def on_rows(self, _w: Any, rows: list[dict[str, Any]]) -> None:
        self.ids.timeline.data = rows

    def on_chart(self, _w: Any, chart: list[dict[str, Any]]) -> None:
        box = self.ids.chart_box
        box.clear_widgets()
        top = max([1] + [c["sent"] + c["received"] for c in chart])
        for c in chart:
            box.add_widget(make("DayBar", peak=top, **c))


class SettingsScreen(Screen):
    me = StringProperty("")
    members = ListProperty([])
    school_days = StringProperty("")
    school = StringProperty("")
    home = StringProperty("")
    overrides = StringProperty("")
    low_battery = NumericProperty(20)

    def show(self, snap: Snapshot, members: list[dict[str, Any]]) -> None:
        view = snap.settings
        self.me = snap.me
        self.members = members
        self.school_days = view.school_days
        self.school = view.school
        self.home = view.home
        self.overrides = view.overrides
        self.low_battery = view.low_battery_percent

    def on_members(self, _w: Any, members: list[dict[str, Any]]) -> None:
        box = self.ids.signatures_box
        box.clear_widgets()
        for m in members:
            box.add_widget(
                make("SignatureRow", member_id=m["member_id"], name=m["name"], signature=m["signature"])
            )


class ChildScreen(Screen):
    members = ListProperty([])
    last_hugs = ListProperty([])
    asking_pin = BooleanProperty(False)

    def show(self, snap: Snapshot, members: list[dict[str, Any]]) -> None:
        self.members = members
        self.last_hugs = [f"{r.when}  {r.text}" for r in snap.history.rows[:3]]

    def on_members(self, _w: Any, members: list[dict[str, Any]]) -> None:
        box = self.ids.faces_box
        box.clear_widgets()
        for m in members:
            box.add_widget(make("Face", name=m["name"], initial=m["initial"], online=bool(m["online"])))


def load_kv() -> None:
    """Load the screens' kv files once per process (loading a file twice would apply its rules twice)."""
    for name in ("main", *SCREENS):
        path = str(KV_DIR / f"{name}.kv")
        if path not in Builder.files:
            Builder.load_file(path)


def view_of(widget: Any) -> HugView:
    """The :class:`HugView` a widget belongs to (kv handlers call ``view_of(self).controller...``):
    the nearest ancestor, or a popup, with a ``hug_view``; else the running app's view."""
    w, depth = widget, 0
    while w is not None and depth < 64:  # the Window is its own parent
        view = getattr(w, "hug_view", None)
        if isinstance(view, HugView):
            return view
        w, depth = w.parent, depth + 1
    view = getattr(App.get_running_app(), "view", None)
    if not isinstance(view, HugView):
        raise LookupError(f"{widget} is not inside a companion's screens")
    return view


class HugView:
    """One companion's screens (a ``RootView``) over its controller. The app shows one; the demo
    (``hugapp.dev.demo_ui``) shows two side by side in one window."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.snapshot: Snapshot | None = None
        self.refreshes = 0
        self.root: Any = None
        self._trigger: Any = None
        self._ticker: Any = None

    def build(self) -> Any:
        """The view's widget tree (kv must be loaded: :func:`load_kv`)."""
        root = Factory.RootView()
        root.hug_view = self
        self.root = root
        sm = root.ids.sm
        for cls, name in (
            (HomeScreen, "home"),
            (BandsScreen, "bands"),
            (LinkScreen, "link"),
            (HistoryScreen, "history"),
            (SettingsScreen, "settings"),
            (ChildScreen, "child"),
        ):
            sm.add_widget(cls(name=name))
        self._trigger = Clock.create_trigger(self.refresh, -1)
        self.controller.on_update = self._trigger
        self._ticker = Clock.schedule_interval(self._tick, REFRESH_EVERY_S)
        self._trigger()
        return root

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self.controller.on_update = lambda: None

    def _tick(self, _dt: float) -> None:
        self._trigger()

    def screen(self, name: str) -> Any:
        return self.root.ids.sm.get_screen(name)

    def go(self, name: str) -> None:
        self.root.ids.sm.current = name
        self.root.current_screen = name

    # -- the one place that copies the companion's state into Kivy properties -----------------------

    def refresh(self, *_args: Any) -> None:
        snap = self.controller.snapshot()
        self.snapshot = snap
        self.refreshes += 1
        root = self.root
        root.error = snap.error
        root.notice = snap.notice
        root.child_mode = snap.child_mode
        sm = root.ids.sm
        if snap.child_mode and sm.current != "child":
            self.go("child")
        elif not snap.child_mode and sm.current == "child":
            self.go("home")
        members = [dataclasses.asdict(m) | {"online": bool(m.online)} for m in snap.home.members]
        for name in SCREENS:
            self.screen(name).show(snap, members)

    # -- screen actions that need Kivy widgets (everything else calls the controller from .kv) -----

    def heart(self, squeeze_ms: int) -> None:
        self.controller.home.send_hug(squeeze_ms)

    def unlock_child_mode(self, pin: str) -> bool:
        ok = self.controller.child.leave_child_mode(pin)
        if ok:
            self.screen("child").asking_pin = False
        return ok


class HugApp(App):
    """The companion's window: one :class:`HugView` over the Kivy-free controller of the running companion."""

    title = "Hug Button"

    def __init__(self, controller: Controller, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # pyright: ignore[reportUnknownMemberType] - Kivy is untyped
        self.controller = controller
        self.view = HugView(controller)

    def build(self) -> Any:
        load_kv()
        return self.view.build()

    def on_stop(self) -> None:
        self.view.close()

    @property
    def snapshot(self) -> Snapshot | None:
        return self.view.snapshot

    @property
    def refreshes(self) -> int:
        return self.view.refreshes

    def screen(self, name: str) -> Any:
        return self.view.screen(name)

    def go(self, name: str) -> None:
        self.view.go(name)

    def refresh(self, *_args: Any) -> None:
        self.view.refresh()

    def heart(self, squeeze_ms: int) -> None:
        self.view.heart(squeeze_ms)

    def screenshot(self, path: Path) -> Path:
        return save_screenshot(path)


def save_screenshot(path: Path) -> Path:
    """Save the window as a PNG at ``path`` (Kivy numbers its files; this renames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    made = Window.screenshot(str(path.with_suffix("")) + "-%(counter)04d.png")
    Path(made).replace(path)
    return path


def window_size(width: int = 420, height: int = 760) -> None:
    """A phone-shaped window on the desktop."""
    Window.size = (width, height)
    Window.clearcolor = (0.98, 0.96, 0.95, 1)


async def run_app(api: CompanionApi, hub: ChangeHub | None = None, app_ready: Any = None) -> None:
    """Run the app window until it is closed, on the running loop, beside the companion's tasks.

    ``api``: a Companion running in this process, or the service's (``hugapp.window_link.remote``).
    ``hub`` is the ``ChangeHub`` it was built with (its ``on_change``); ``app_ready(app)`` is called
    once the app exists (tests drive it from there).
    """
    controller = Controller(api)
    if hub is not None:
        hub.target = controller.changed
    window_size()
    app = HugApp(controller)
    if app_ready is not None:
        app_ready(app)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # closing the terminal closes the window cleanly
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, app.stop)
    try:
        await app.async_run(async_lib="asyncio")
    finally:
        if hub is not None:
            hub.target = lambda: None
        await controller.close()
        await asyncio.sleep(0)
