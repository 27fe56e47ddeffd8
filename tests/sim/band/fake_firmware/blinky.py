"""Fake firmwares for the runner tests. Board: button GPIO3 (active low, internal pull-up),
motor PWM on GPIO4, LED on GPIO5. Everything uses MicroPython APIs only.

Files written in the band's flash (the working directory):
- ``boots.txt``: one line per boot: "<reset_cause> <wake_reason>"
- ``presses.txt``: the number of presses seen, rewritten at every press
"""

import asyncio
import time

import machine
from machine import PWM, Pin
from micropython import const

_BUTTON = const(3)
_MOTOR = const(4)
_LED = const(5)


def _log_boot() -> int:
    with open("boots.txt", "a") as f:
        f.write("%d %d\n" % (machine.reset_cause(), machine.wake_reason()))
    with open("boots.txt") as f:
        return len(f.read().split("\n")) - 1


def _read_int(name: str) -> int:
    try:
        with open(name) as f:
            return int(f.read())
    except OSError:
        return 0


def main() -> None:
    """Buzz and light while the heart is pressed; count presses in flash."""
    _log_boot()
    asyncio.run(_buzz_loop())


async def _buzz_loop() -> None:
    flag = asyncio.ThreadSafeFlag()
    button = Pin(_BUTTON, Pin.IN, Pin.PULL_UP)
    presses = _read_int("presses.txt")

    def irq(pin):  # record and flag only
        flag.set()

    button.irq(irq, Pin.IRQ_FALLING | Pin.IRQ_RISING)
    # outputs last: a silent motor on the timeline means the band is ready for presses
    led = Pin(_LED, Pin.OUT, value=0)
    motor = PWM(Pin(_MOTOR), freq=200, duty_u16=0)
    down = False
    while True:
        await flag.wait()
        pressed = button.value() == 0
        if pressed and not down:
            presses += 1
            with open("presses.txt", "w") as f:  # noqa: ASYNC230 - MicroPython has no async files
                f.write(str(presses))
            motor.duty_u16(49151)
            led.on()
        elif not pressed and down:
            motor.duty_u16(0)
            led.off()
        down = pressed


def reset_main() -> None:
    """First boot: machine.reset(). Later boots: idle."""
    n = _log_boot()
    if n == 1:
        machine.reset()
    while True:
        time.sleep_ms(50)


def wdt_main() -> None:
    """Power-on boot: arm a 1 s watchdog and stop feeding it after ~0.3 s. Later boots: feed it."""
    n = _log_boot()
    wdt = machine.WDT(timeout=1000)
    t0 = time.ticks_ms()
    while True:
        if n > 1 or time.ticks_diff(time.ticks_ms(), t0) < 300:
            wdt.feed()
        time.sleep_ms(20)


async def _hang_forever() -> None:
    while True:
        await asyncio.sleep_ms(10_000)


def wdt_async_main() -> None:
    """Arm the watchdog, then block in the asyncio loop without feeding it."""
    n = _log_boot()
    machine.WDT(timeout=1000)
    if n == 1:
        asyncio.run(_hang_forever())
    while True:
        time.sleep_ms(50)


def sleep_main() -> None:
    """Deep sleep until the heart is pressed (ext0, active low) or 60 s pass; after a wake, idle."""
    n = _log_boot()
    if n == 1:
        button = Pin(_BUTTON, Pin.IN, Pin.PULL_UP)
        button.irq(trigger=Pin.WAKE_LOW, wake=machine.DEEPSLEEP)
        machine.deepsleep(60_000)
    while True:
        time.sleep_ms(50)


def timer_sleep_main() -> None:
    """Deep sleep 200 ms on the first boot only."""
    n = _log_boot()
    if n == 1:
        machine.deepsleep(200)
    while True:
        time.sleep_ms(50)


def crash_main() -> None:
    _log_boot()
    raise ValueError("boom")
