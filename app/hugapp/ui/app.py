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
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hugapp.core.api import CompanionApi
from hugapp.ui.controller import Controller, Snapshot
from hugapp.ui.home import SQUEEZE_MS
from hugapp.ui.screens import (
    BandsScreen,
    ChildScreen,
    HistoryScreen,
    HomeScreen,
    LinkScreen,
    SettingsScreen,
)

from kivy.animation import Animation  # isort: skip
from kivy.app import App  # isort: skip
from kivy.clock import Clock  # isort: skip
from kivy.core.window import Window  # isort: skip
from kivy.factory import Factory  # isort: skip
from kivy.lang import Builder  # isort: skip
from kivy.properties import (  # isort: skip
    BooleanProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior  # isort: skip
from kivy.uix.boxlayout import BoxLayout  # isort: skip
from kivy.uix.widget import Widget  # isort: skip

log = logging.getLogger("hugapp.ui")

KV_DIR = Path(__file__).resolve().parent
SCREENS = ("home", "bands", "link", "history", "settings", "child")
REFRESH_EVERY_S = 1.0  # countdowns and "5 min ago" move even when the companion is quiet


class ChangeBell:
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


def load_kv() -> None:
    """Load the screens' kv files once per process (loading a file twice would apply its rules twice)."""
    for name in ("main", *SCREENS):
        path = str(KV_DIR / f"{name}.kv")
        if path not in Builder.files:
            Builder.load_file(path)


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


def stop_on_signals(app: Any) -> None:
    """Closing the terminal (SIGINT, SIGTERM) closes the window cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, app.stop)


async def run_window(app: Any, app_ready: Any = None) -> None:
    """Run a Kivy ``app`` on the running loop until its window is closed (or the terminal is);
    ``app_ready(app)`` is called first (tests drive the app from there)."""
    if app_ready is not None:
        app_ready(app)
    stop_on_signals(app)
    await app.async_run(async_lib="asyncio")


async def run_app(api: CompanionApi, bell: ChangeBell | None = None, app_ready: Any = None) -> None:
    """Run the app window until it is closed, on the running loop, beside the companion's tasks.

    ``api``: a Companion running in this process, or the service's (``hugapp.window_link.remote``).
    ``bell`` is the ``ChangeBell`` it was built with (its ``on_change``); ``app_ready(app)`` is called
    once the app exists (tests drive it from there).
    """
    controller = Controller(api)
    if bell is not None:
        bell.target = controller.changed
    window_size()
    try:
        await run_window(HugApp(controller), app_ready)
    finally:
        if bell is not None:
            bell.target = lambda: None
        await controller.close()
        await asyncio.sleep(0)
