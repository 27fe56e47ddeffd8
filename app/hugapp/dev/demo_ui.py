"""`hugbutton demo --ui`: the scripted day with both phones' apps side by side in one window.

Kivy opens one window per process, so the window is split in two halves, each the real app (a
:class:`~hugapp.ui.app.HugView`: the screens over a :class:`~hugapp.ui.controller.Controller` of that
person's running Companion). Kivy runs through ``App.async_run`` on the demo's loop, beside the
companions and the scripted day. The window stays open a few seconds after the day, then closes;
closing it earlier stops the demo. ``HUG_DEMO_SCREENSHOT=PATH`` saves the window as a PNG at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from hugapp.core.companion import Companion
from hugapp.dev.demo import DemoError
from hugapp.ui.app import HugView, load_kv, save_screenshot, window_size
from hugapp.ui.controller import Controller

from kivy.app import App  # isort: skip
from kivy.core.window import Window  # isort: skip
from kivy.metrics import dp  # isort: skip
from kivy.uix.boxlayout import BoxLayout  # isort: skip
from kivy.uix.label import Label  # isort: skip


class _NoCutbufferNoise(logging.Filter):
    """Without xclip/xsel Kivy logs a critical error and tracebacks when the first text field is made;
    only X11's middle-click paste is missing. The demo's own output stays readable."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Cutbuffer: Unable to find any valuable")


logging.getLogger("kivy").addFilter(_NoCutbufferNoise())

LINGER_S = 5.0  # the window stays open this long after the day
PHONE_W, PHONE_H = 420, 760
CAPTION_H = 30


class DemoApp(App):
    """One window, one half per phone."""

    title = "Hug Button demo"

    def __init__(self, views: Mapping[str, HugView], **kwargs: Any) -> None:
        super().__init__(**kwargs)  # pyright: ignore[reportUnknownMemberType] - Kivy is untyped
        self.views = dict(views)
        self.title = "Hug Button demo — " + " and ".join(f"{n}'s phone" for n in self.views)

    def build(self) -> Any:
        load_kv()
        row = BoxLayout(orientation="horizontal", spacing=dp(2))
        for name, view in self.views.items():
            half = BoxLayout(orientation="vertical")
            half.add_widget(
                Label(
                    text=f"{name}'s phone",
                    bold=True,
                    size_hint_y=None,
                    height=dp(CAPTION_H),
                    color=(1, 1, 1, 1),
                )
            )
            half.add_widget(view.build())
            row.add_widget(half)
        return row

    def on_stop(self) -> None:
        for view in self.views.values():
            view.close()

    def show(self, screen: str) -> None:
        for view in self.views.values():
            view.go(screen)


async def run(
    phones: Mapping[str, Companion], day: Coroutine[Any, Any, None], linger: float = LINGER_S
) -> None:
    """Run ``day`` with the phones' apps on screen; returns when the window has closed after it.

    Raises what the day raises, or DemoError if the window is closed before the day ends."""
    controllers = {name: Controller(phone) for name, phone in phones.items()}
    restore: list[Callable[[], None]] = []
    for name, phone in phones.items():
        previous = phone.on_change
        controller = controllers[name]

        def chained(previous: Callable[[], None] = previous, controller: Controller = controller) -> None:
            previous()
            controller.changed()

        def undo(phone: Companion = phone, previous: Callable[[], None] = previous) -> None:
            phone.on_change = previous

        phone.on_change = chained
        restore.append(undo)
    views = {name: HugView(c) for name, c in controllers.items()}
    window_size(PHONE_W * len(views), PHONE_H + CAPTION_H)
    Window.clearcolor = (0.35, 0.25, 0.28, 1)  # behind the captions and between the halves
    app = DemoApp(views)
    day_task = asyncio.ensure_future(day)
    app_task = asyncio.ensure_future(app.async_run(async_lib="asyncio"))
    try:
        await asyncio.wait({day_task, app_task}, return_when=asyncio.FIRST_COMPLETED)
        if not day_task.done():
            await app_task  # a Kivy error surfaces here
            raise DemoError("the window was closed before the day ended")
        day_task.result()  # the day's own error, if any, with the window closed below
        app.show("history")  # the day's hugs with their receipts, side by side
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(app_task), linger)
        shot = os.environ.get("HUG_DEMO_SCREENSHOT")
        if shot and not app_task.done():
            save_screenshot(Path(shot))
    finally:
        day_task.cancel()
        if not app_task.done():
            app.stop()
        await asyncio.gather(day_task, app_task, return_exceptions=True)
        for put_back in restore:
            put_back()
        await asyncio.gather(*(c.close() for c in controllers.values()))
