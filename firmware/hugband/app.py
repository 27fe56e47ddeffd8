"""The band's asyncio shell: wires BandLogic to the pins, the motor, the LED and the radio.

All decisions live in BandLogic; this loop only samples inputs, drains radio events,
performs the actions BandLogic queues, and feeds the watchdog.
"""

import asyncio
import os
import time

import bluetooth
import machine
from micropython import const

from hugband import board as boards
from hugband import button, haptics, power, ticks
from hugband.ble import EV_COMMAND, EV_CONNECT, EV_DISCONNECT, Peripheral
from hugband.logic import (
    A_ADDRESS,
    A_ADVERTISE,
    A_BATTERY,
    A_CPU,
    A_DEEP_SLEEP,
    A_DISCONNECT,
    A_FACTORY_RESET,
    A_LED,
    A_MOTOR,
    A_NOTIFY,
    A_PLAYING,
    A_STATE,
    BandLogic,
)
from hugband.store import FileBlob

_FAST_MS = const(5)  # loop period while something is going on
_IDLE_MS = const(200)  # otherwise: sleep until an IRQ or this long
_BATTERY_EVERY_MS = const(60000)
_LINK_CHECK_MS = const(1000)  # how often the link the logic holds is checked against the stack
_WDT_MS = const(8000)
_DRV2605 = const(0x5A)


def now_ms() -> int:
    return time.ticks_ms()  # pyright: ignore[reportReturnType]  (ticks are small ints)


class Hardware:
    """The board's pins, made from its board file."""

    def __init__(self, board: dict, wake) -> None:
        self.board = board
        self.button = None
        self.touch = None
        self.edges = button.EdgeLog()
        if board["button_pin"] is not None:
            pull = machine.Pin.PULL_UP if board["button_active_low"] else machine.Pin.PULL_DOWN
            self.button = machine.Pin(board["button_pin"], machine.Pin.IN, pull)
            self._down_level = 0 if board["button_active_low"] else 1
            self._wake = wake
            self.button.irq(self._edge, machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING, hard=True)
        else:
            self.touch = machine.TouchPad(machine.Pin(board["touch_pin"]))
        self.pwm = None
        self.i2c = None
        if board["motor_driver"] == "drv2605l":
            bus = board["i2c"]
            self.i2c = machine.I2C(bus["id"], sda=machine.Pin(bus["sda"]), scl=machine.Pin(bus["scl"]))
            self.i2c.writeto_mem(_DRV2605, 0x01, b"\x05")  # mode: real-time playback
        else:
            self.pwm = machine.PWM(machine.Pin(board["motor_pin"]), freq=board["pwm_freq"], duty_u16=0)
        self.led = None
        self.pixel = None
        if board["led_kind"] == "pin":
            self.led = machine.Pin(
                board["led_pin"], machine.Pin.OUT, value=1 if board["led_active_low"] else 0
            )
        elif board["led_kind"] == "neopixel":
            import neopixel

            self.pixel = neopixel.NeoPixel(machine.Pin(board["led_pin"]), 1)
        self.adc = None
        if board["battery_adc_pin"] is not None:
            self.adc = machine.ADC(machine.Pin(board["battery_adc_pin"]), atten=machine.ADC.ATTN_11DB)

    def _edge(self, pin) -> None:
        """Hard IRQ: time-stamp the edge now (the main loop may be busy), then wake the loop."""
        self.edges.record(1 if pin.value() == self._down_level else 0, now_ms())
        self._wake.set()

    def heart_pressed(self) -> bool:
        if self.button is None:
            return False
        return self.button.value() == (0 if self.board["button_active_low"] else 1)

    def motor(self, duty: int) -> None:
        if self.i2c is not None:
            self.i2c.writeto_mem(_DRV2605, 0x02, bytes((haptics.drv2605_rtp(duty),)))
        elif self.pwm is not None:
            self.pwm.duty_u16(duty * 64)

    def light(self, colour: int) -> None:
        if self.led is not None:
            on = colour != 0
            self.led.value(1 if on != self.board["led_active_low"] else 0)
        elif self.pixel is not None:
            self.pixel[0] = ((colour >> 16) & 0xFF, (colour >> 8) & 0xFF, colour & 0xFF)
            self.pixel.write()

    def battery_mv(self) -> int:
        if self.adc is None:
            return 4000
        return power.battery_mv(self.adc.read_uv(), self.board["battery_divider"])

    def arm_wake(self) -> None:
        import esp32

        pin = self.board["button_pin"]
        if pin is None:
            esp32.wake_on_touch(True)
            return
        level = esp32.WAKEUP_ALL_LOW if self.board["button_active_low"] else esp32.WAKEUP_ANY_HIGH
        if self.board["mcu"] == "esp32c3":  # no EXT1 on the C3: GPIO 0-5 wake it
            esp32.wake_on_gpio((machine.Pin(pin),), level)
        else:
            esp32.wake_on_ext1((machine.Pin(pin),), level)


class App:
    def __init__(self) -> None:
        self.board = boards.flashed()
        self.wake = asyncio.ThreadSafeFlag()
        self.hw = Hardware(self.board, self.wake)
        self.radio = Peripheral(bluetooth.BLE(), self.board["title"][:40], "1", self.wake)
        now = now_ms()
        self.core = BandLogic(
            self.board, FileBlob("outbox.bin"), os.urandom, FileBlob("band.key"), now, FileBlob("played.bin")
        )
        self.wdt = machine.WDT(timeout=_WDT_MS)
        self._battery_at = ticks.add(now, -_BATTERY_EVERY_MS)
        self._checked_at = now
        self._events_lost = 0

    def perform(self, action) -> None:
        kind, a, b = action
        if kind == A_NOTIFY:
            self.radio.notify_event(a, b)
        elif kind == A_STATE:
            self.radio.set_state(a)
        elif kind == A_MOTOR:
            self.hw.motor(a)
        elif kind == A_LED:
            self.hw.light(a)
        elif kind == A_DISCONNECT:
            self.radio.disconnect(a)
        elif kind == A_ADVERTISE:
            self.radio.advertise(a, b)
        elif kind == A_ADDRESS:
            self.core.on_address(self.radio.new_address(), now_ms())
        elif kind == A_BATTERY:
            self.radio.set_battery(a, True)
        elif kind == A_CPU:
            machine.freq(a * 1_000_000)
        elif kind == A_DEEP_SLEEP:
            self.hw.motor(0)
            self.hw.light(0)
            self.hw.arm_wake()
            machine.deepsleep()
        elif kind == A_PLAYING:
            self.core.save_played(a)
        elif kind == A_FACTORY_RESET:
            machine.reset()

    def step(self, now: int) -> None:
        core = self.core
        if self.hw.touch is not None:
            core.on_touch(self.hw.touch.read(), now)
        else:
            edge = self.hw.edges.take()
            while edge is not None:
                core.on_button(edge[0], edge[1])
                edge = self.hw.edges.take()
            core.on_button(self.hw.heart_pressed(), now)  # catches up if edges were dropped
        event = self.radio.next_event()
        while event is not None:
            kind, conn, data = event
            if kind == EV_CONNECT:
                core.on_connect(conn, now, self.radio.addr)
            elif kind == EV_DISCONNECT:
                core.on_disconnect(conn, now)
            elif kind == EV_COMMAND:
                core.on_command(conn, data, now)
            event = self.radio.next_event()
        self.check_link(now)
        if ticks.diff(now, self._battery_at) >= _BATTERY_EVERY_MS:
            self._battery_at = now
            core.on_battery(self.hw.battery_mv(), now)
        core.poll(now)
        action = core.pop_action()
        while action is not None:
            self.perform(action)
            action = core.pop_action()
        self.wdt.feed()

    def check_link(self, now: int) -> None:
        """Reconcile the logic's link with the BLE stack (which may have lost a link IRQ): every
        second, or at once when the radio lost a link event. A link the stack no longer has comes
        back from the radio as a disconnect; one the logic dropped is asked to go again."""
        radio = self.radio
        lost = radio.link_events_lost != self._events_lost
        if not lost and ticks.diff(now, self._checked_at) < _LINK_CHECK_MS:
            return
        self._checked_at = now
        self._events_lost = radio.link_events_lost
        conn = self.core.link
        if conn is not None and radio.alive(conn) and self.core.link_dropped:
            radio.disconnect(conn)

    async def run(self) -> None:
        while True:
            self.step(now_ms())
            try:  # an IRQ (button edge, radio event) ends the wait at once
                await asyncio.wait_for_ms(self.wake.wait(), _FAST_MS if self.core.busy else _IDLE_MS)
            except asyncio.TimeoutError:
                pass


def run() -> None:
    asyncio.run(App().run())
