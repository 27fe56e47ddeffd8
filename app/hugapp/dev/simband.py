"""The virtual band's own window: press its heart (mouse or space bar), watch it buzz.

    python -m hugapp.dev.simband --airspace HOST:PORT --address C0:FF:EE:00:00:01

A press and a release of the on-screen heart (or the space bar) are the band's button pressed and
released in the airspace (``AirspaceControl.press``/``release``), so holding it 5 s opens the pairing
window like the real heart. The band's outputs arrive as airspace events (``wait_output``): the motor's
intensity shakes the heart, the LED lights a glow behind it. Kivy runs on the same asyncio loop as the
airspace client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from hugsim.airspace import AirspaceControl, AirspaceError

from kivy.app import App  # isort: skip
from kivy.clock import Clock  # isort: skip
from kivy.core.window import Window  # isort: skip
from kivy.lang import Builder  # isort: skip
from kivy.properties import BooleanProperty, NumericProperty, StringProperty  # isort: skip

from hugapp.ui.app import HeartButton  # registers the heart's class with Kivy's Factory

__all__ = ["HeartButton", "SimBandApp", "main", "run"]

KV = Path(__file__).resolve().parent / "simband.kv"
KV_DIR = Path(__file__).resolve().parents[1] / "ui"  # the app's shared styles (main.kv)
SPACE = 32


class SimBandApp(App):
    title = "Virtual Hug band"
    address = StringProperty("")
    motor = NumericProperty(0.0)
    led = BooleanProperty(False)
    held = BooleanProperty(False)
    status = StringProperty("")

    def __init__(self, airspace: str, address: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # pyright: ignore[reportUnknownMemberType] - Kivy is untyped
        self.airspace = airspace
        self.address = address
        self.control = AirspaceControl(airspace)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.buzzes = 0  # motor runs seen (tests read it)
        self.presses = 0

    def build(self) -> Any:
        Builder.load_file(str(KV_DIR / "main.kv"))
        root = Builder.load_file(str(KV))
        Window.size = (300, 360)
        Window.clearcolor = (0.12, 0.12, 0.14, 1)
        Window.bind(on_key_down=self._key_down, on_key_up=self._key_up)
        Clock.schedule_interval(self._shake, 1 / 30)
        self._spawn(self._watch())
        return root

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- the heart: press and release are the band's button --------------------------------------

    def press(self) -> None:
        if self.held:
            return
        self.held = True
        self.presses += 1
        self._spawn(self._input(True))

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        self._spawn(self._input(False))

    async def _input(self, down: bool) -> None:
        try:
            if down:
                await self.control.press(self.address)
            else:
                await self.control.release(self.address)
        except (AirspaceError, OSError) as exc:
            self.status = f"the airspace did not answer ({exc})"

    def _key_down(self, _window: Any, key: int, *_args: Any) -> bool:
        if key == SPACE:
            self.press()
            return True
        return False

    def _key_up(self, _window: Any, key: int, *_args: Any) -> bool:
        if key == SPACE:
            self.release()
            return True
        return False

    # -- the band's outputs -----------------------------------------------------------------------

    async def _watch(self) -> None:
        try:
            await self.control.start()
            await self.control.wait_node(self.address, 20)
        except (AirspaceError, OSError) as exc:
            self.status = f"no band {self.address} in the airspace ({exc})"
            return
        self.status = "space bar or mouse: press the heart"
        since = await self.control.now()
        while True:
            try:
                entry = await self.control.wait_output(self.address, None, since_ms=since, timeout=3600)
            except AirspaceError:
                continue
            since = entry.t_ms + 0.001
            if entry.kind == "motor":
                value = float(entry.value)  # pyright: ignore[reportArgumentType]
                if value > 0 and self.motor == 0:
                    self.buzzes += 1
                self.motor = value
            elif entry.kind == "led":
                self.led = bool(entry.value != 0 and entry.value != (0, 0, 0))

    def _shake(self, _dt: float) -> None:
        heart = self.root.ids.heart
        heart.buzz = self.motor
        heart.lit = self.led
        if self.motor > 0:
            heart.buzz_phase += 1

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.control.close()


async def run(airspace: str, address: str) -> None:
    app = SimBandApp(airspace, address)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, app.stop)
    try:
        await app.async_run(async_lib="asyncio")
    finally:
        await app.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hugapp.dev.simband", description="The virtual band's own window."
    )
    parser.add_argument("--airspace", required=True, help="HOST:PORT of the airspace")
    parser.add_argument("--address", required=True, help="the virtual band's address")
    args = parser.parse_args(argv)
    asyncio.run(run(args.airspace, args.address))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
