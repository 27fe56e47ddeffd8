"""MicroPython's scheduler (``micropython.schedule`` and soft IRQs) for the simulated band.

On the band, scheduled callbacks run in the main (only) Python thread "between bytecodes", including
while it waits in ``time.sleep_ms`` or in the asyncio poller. Here they run in the *firmware thread*:

- if the firmware runs an asyncio loop (the usual case), via ``loop.call_soon_threadsafe``, i.e. at the
  next turn of that loop, never in the middle of a coroutine step;
- otherwise while the firmware blocks in ``time.sleep``/``sleep_ms``/``sleep_us``/``machine.idle``/
  ``lightsleep`` (a firmware busy loop that never sleeps does not run them - nor would it run much else).

Like MicroPython's esp32 port the queue holds ``DEPTH`` (8) entries: ``micropython.schedule`` raises
``RuntimeError("schedule queue full")`` beyond that; a soft pin IRQ that finds the queue full is dropped
and counted in ``dropped`` (mp_sched_schedule's result is ignored for pin IRQs on the band too).
"""

import sys
import threading
from collections import deque

DEPTH = 8


class Scheduler:
    def __init__(self) -> None:
        self._q = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.loop = None  # the firmware's running asyncio loop, set by hugsim.band.shims
        self.dropped = 0

    def reset(self) -> None:
        """Forget everything pending (a reboot)."""
        with self._lock:
            self._q.clear()
            self.loop = None
        self._wake.clear()

    def schedule(self, func, arg) -> bool:
        """Queue ``func(arg)`` for the firmware thread; False (and nothing queued) when full."""
        with self._lock:
            if len(self._q) >= DEPTH:
                return False
            self._q.append((func, arg))
            loop = self.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self.run_pending)
            except RuntimeError:  # loop closed between boots; the sleep path picks it up
                pass
        self._wake.set()
        return True

    def pending(self) -> int:
        with self._lock:
            return len(self._q)

    def run_pending(self) -> None:
        """Run queued callbacks in FIFO order (call in the firmware thread). An exception in a
        callback is printed and does not stop the others, as on MicroPython."""
        from hugsim.band import runtime

        if runtime.firmware_thread_id is not None and not runtime.in_firmware():
            return
        while True:
            with self._lock:
                if not self._q:
                    self._wake.clear()
                    return
                func, arg = self._q.popleft()
            try:
                func(arg)
            except runtime.Reboot:
                raise
            except Exception as exc:  # noqa: BLE001 - mirrors mp_call_function_1_protected
                print("Uncaught exception in IRQ callback handler", file=sys.stderr)
                sys.print_exception(exc) if hasattr(sys, "print_exception") else print(repr(exc))

    def poke(self) -> None:
        """Wake a firmware thread blocked in a sleep shim or its asyncio loop (reboot requests)."""
        self._wake.set()
        loop = self.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(lambda: None)
            except RuntimeError:
                pass

    def wait(self, timeout: float) -> None:
        """Block up to ``timeout`` s or until something is scheduled."""
        self._wake.wait(timeout)
