"""Process-wide handles of the one virtual band this process simulates.

The sim port modules (``machine``, ``bluetooth``, ...) are re-imported at every simulated reboot, so
everything that must outlive a reboot (the physics, the radio link, the scheduler) lives here, in a
module that is *not* purged.

- ``world``: the :class:`hugsim.band.world.World` (pins, outputs timeline, battery, flash-backed NVS, ...).
- ``radio``: the airspace link object set by the runner (``hugsim.airspace.PeripheralRadio`` or a
  test double); ``port/bluetooth.py`` reads it. ``None`` when the band runs without a radio.
- ``band``: the :class:`hugsim.band.runner.Band` driving the firmware, or ``None`` (port modules then still
  work, e.g. in unit tests, but resets just raise :class:`Reboot`).
- ``scheduler``: the MicroPython scheduler stand-in (``micropython.schedule``, soft IRQs).
"""

import threading
import time as _time

from hugsim.band.scheduler import Scheduler

world = None
radio = None
band = None
scheduler = Scheduler()

# set by the runner at every boot; read by time.ticks_ms() and machine.reset_cause()/wake_reason()
boot_monotonic = _time.monotonic()
ticks_start_ms = 0
reset_cause = 1  # machine.PWRON_RESET
wake_reason = 0  # ESP_SLEEP_WAKEUP_UNDEFINED
firmware_thread_id = None  # threading.get_ident() of the thread running the firmware

# held by machine.disable_irq() and around every hard IRQ (pin, radio): "interrupts" exclude each other
irq_lock = threading.RLock()


class Reboot(SystemExit):
    """Raised in the firmware thread to end the current boot (reset, WDT, deep sleep, stop).

    A ``SystemExit`` subclass so asyncio re-raises it out of the event loop from any task (it does so
    only for ``SystemExit``/``KeyboardInterrupt``) and ``except Exception`` in firmware does not eat it.
    """


def in_firmware() -> bool:
    """True when called from the thread running the firmware."""
    return firmware_thread_id is not None and threading.get_ident() == firmware_thread_id


def reboot(kind: str, **info) -> None:
    """End the current boot: ``kind`` is "soft" (machine.reset), "deepsleep", "wdt", "power" ...

    Called in the firmware thread it raises :class:`Reboot` at once (it never returns). Called from
    another thread (a hard IRQ, the radio) it asks the band to interrupt the firmware thread and
    raises :class:`Reboot` in the caller too, because ``machine.reset()`` never returns.
    """
    if band is not None:
        band.request_reboot(kind, info)
    raise Reboot(kind)


def check_reboot() -> None:
    """Raise :class:`Reboot` in the firmware thread if a reboot is pending (used by sleep shims)."""
    if band is not None and in_firmware() and band.reboot_pending():
        raise Reboot("pending")


def fw_wait(seconds: float) -> None:
    """Block the firmware for ``seconds``, running scheduled callbacks (soft IRQs) meanwhile, and
    raising :class:`Reboot` promptly if a reboot is requested. Other threads just sleep."""
    if not in_firmware():
        _time.sleep(max(0.0, seconds))
        return
    deadline = _time.monotonic() + max(0.0, seconds)
    while True:
        check_reboot()
        scheduler.run_pending()
        left = deadline - _time.monotonic()
        if left <= 0:
            return
        scheduler.wait(min(left, 0.05))
