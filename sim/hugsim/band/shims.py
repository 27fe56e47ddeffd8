"""MicroPython's extras added to CPython's own modules, for firmware running on the sim port.

CPython's ``time``, ``asyncio``, ``gc`` and ``sys`` cannot be replaced wholesale (the rest of the
process - pytest, the radio client - uses them), so ``install()`` *adds* the missing names:

- ``time``: ``ticks_ms``, ``ticks_us``, ``ticks_cpu``, ``ticks_add``, ``ticks_diff``, ``sleep_ms``,
  ``sleep_us`` with MicroPython's semantics: ticks wrap at ``TICKS_PERIOD`` = 2**30 (ticks are in
  ``[0, 2**30)``), ``ticks_diff`` is signed in ``[-2**29, 2**29)``, ``ticks_add`` raises
  ``OverflowError("ticks interval overflow")`` unless ``-2**29 < delta < 2**29``. Ticks restart at
  ``runtime.ticks_start_ms`` (default 0) at every simulated boot, as on the band.
  In the firmware thread only (other threads see CPython's behaviour): ``time.sleep`` also runs
  scheduled callbacks and honours reboots; ``localtime``/``gmtime`` return MicroPython's 8-tuple
  ``(year, month, mday, hour, minute, second, weekday, yearday)`` and ``mktime`` accepts it.
  ``time.time()`` stays the host's Unix time (the band's RTC would need setting).
- ``asyncio``: ``sleep_ms``, ``wait_for_ms``, ``ThreadSafeFlag`` (``set()`` may be called from any
  thread, e.g. a hard IRQ delivered in the radio thread). The event loop policy is replaced so the loop
  the firmware runs is known to the scheduler (soft IRQs and ``micropython.schedule`` run on it).
- ``gc``: ``mem_free``, ``mem_alloc`` (a fixed, plausible heap: ``HEAP_BYTES``), ``threshold``.
- ``sys``: ``print_exception(exc, file=sys.stdout)``.

``uninstall()`` restores the replaced functions and the loop policy (the added names stay, harmless).
"""

import asyncio
import gc
import sys
import threading
import time
import traceback

TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALFPERIOD = TICKS_PERIOD >> 1
HEAP_BYTES = 160 * 1024

_saved = {}
_installed = False


def _rt():
    from hugsim.band import runtime

    return runtime


# -- time -----------------------------------------------------------------------------------------
def _elapsed_us() -> int:
    rt = _rt()
    return int((time.monotonic() - rt.boot_monotonic) * 1_000_000) + rt.ticks_start_ms * 1000


def ticks_ms() -> int:
    return (_elapsed_us() // 1000) & TICKS_MAX


def ticks_us() -> int:
    return _elapsed_us() & TICKS_MAX


def ticks_cpu() -> int:
    return _elapsed_us() & TICKS_MAX


def _small_int(name: str, v) -> int:
    if type(v) is not int and type(v) is not bool:
        raise TypeError("can't convert %s to int" % type(v).__name__)
    return int(v)


def ticks_add(ticks: int, delta: int) -> int:
    ticks = _small_int("ticks", ticks)
    delta = _small_int("delta", delta)
    if not -TICKS_HALFPERIOD < delta < TICKS_HALFPERIOD:
        raise OverflowError("ticks interval overflow")
    return (ticks + delta) & TICKS_MAX


def ticks_diff(ticks1: int, ticks2: int) -> int:
    ticks1 = _small_int("ticks1", ticks1)
    ticks2 = _small_int("ticks2", ticks2)
    return ((ticks1 - ticks2 + TICKS_HALFPERIOD) & TICKS_MAX) - TICKS_HALFPERIOD


def sleep_ms(ms: int) -> None:
    if ms > 0:
        _rt().fw_wait(ms / 1000.0)
    else:
        _rt().check_reboot()


def sleep_us(us: int) -> None:
    if us > 0:
        _rt().fw_wait(us / 1_000_000.0)


def _sleep(seconds: float) -> None:
    if _rt().in_firmware():
        _rt().fw_wait(seconds)
    else:
        _saved["sleep"](seconds)


def _mp_tuple(st) -> tuple:
    return (st.tm_year, st.tm_mon, st.tm_mday, st.tm_hour, st.tm_min, st.tm_sec, st.tm_wday, st.tm_yday)


def _localtime(secs=None):
    st = _saved["localtime"](secs)
    return _mp_tuple(st) if _rt().in_firmware() else st


def _gmtime(secs=None):
    st = _saved["gmtime"](secs)
    return _mp_tuple(st) if _rt().in_firmware() else st


def _mktime(t):
    if len(t) == 8:
        t = (*tuple(t), -1)
    return _saved["mktime"](t)


# -- asyncio --------------------------------------------------------------------------------------
async def _sleep_ms(ms: int):
    await asyncio.sleep(max(0, ms) / 1000.0)


async def _wait_for_ms(aw, timeout_ms: int):
    return await asyncio.wait_for(aw, timeout_ms / 1000.0)


class ThreadSafeFlag:
    """MicroPython's ``asyncio.ThreadSafeFlag``: ``set()`` from anywhere (IRQ, other thread);
    one task ``await flag.wait()``s, which returns once per set and clears the flag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flag = False
        self._waiter = None  # (loop, future)

    def set(self) -> None:
        with self._lock:
            self._flag = True
            waiter = self._waiter
        if waiter is not None:
            loop, fut = waiter
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # loop closed
                pass

    def clear(self) -> None:
        with self._lock:
            self._flag = False

    def is_set(self) -> bool:  # not in MicroPython's API; handy for tests
        return self._flag

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._flag:
                    self._flag = False
                    return
                fut = loop.create_future()
                self._waiter = (loop, fut)
            try:
                await fut
            finally:
                with self._lock:
                    if self._waiter is not None and self._waiter[1] is fut:
                        self._waiter = None


def _resolve(fut) -> None:
    if not fut.done():
        fut.set_result(None)


class _SimLoop(asyncio.SelectorEventLoop):
    """The default loop, made known to the scheduler while the firmware thread runs it."""

    def run_forever(self):
        rt = _rt()
        mine = rt.in_firmware()
        if mine:
            rt.scheduler.loop = self
            if rt.scheduler.pending():
                self.call_soon(rt.scheduler.run_pending)
        try:
            return super().run_forever()
        finally:
            if mine and rt.scheduler.loop is self:
                rt.scheduler.loop = None


class _SimPolicy(asyncio.DefaultEventLoopPolicy):
    _loop_factory = _SimLoop


# -- gc / sys -------------------------------------------------------------------------------------
def _mem_alloc() -> int:
    return HEAP_BYTES // 4


def _mem_free() -> int:
    return HEAP_BYTES - _mem_alloc()


_threshold = [-1]


def _gc_threshold(amount=None):
    if amount is None:
        return _threshold[0]
    _threshold[0] = int(amount)
    return None


def _print_exception(exc, file=None) -> None:
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=file or sys.stdout)


def install() -> None:
    """Add the MicroPython names (idempotent)."""
    global _installed
    if _installed:
        return
    _saved.update(
        sleep=time.sleep,
        localtime=time.localtime,
        gmtime=time.gmtime,
        mktime=time.mktime,
        policy=asyncio.get_event_loop_policy(),
    )
    for name, fn in (
        ("ticks_ms", ticks_ms),
        ("ticks_us", ticks_us),
        ("ticks_cpu", ticks_cpu),
        ("ticks_add", ticks_add),
        ("ticks_diff", ticks_diff),
        ("sleep_ms", sleep_ms),
        ("sleep_us", sleep_us),
    ):
        setattr(time, name, fn)
    time.sleep = _sleep
    time.localtime = _localtime
    time.gmtime = _gmtime
    time.mktime = _mktime
    asyncio.sleep_ms = _sleep_ms
    asyncio.wait_for_ms = _wait_for_ms
    asyncio.ThreadSafeFlag = ThreadSafeFlag
    asyncio.set_event_loop_policy(_SimPolicy())
    gc.mem_alloc = _mem_alloc
    gc.mem_free = _mem_free
    gc.threshold = _gc_threshold
    if not hasattr(sys, "print_exception"):
        sys.print_exception = _print_exception
    _installed = True


def uninstall() -> None:
    """Restore CPython's ``time.sleep``/``localtime``/``gmtime``/``mktime`` and the loop policy."""
    global _installed
    if not _installed:
        return
    time.sleep = _saved["sleep"]
    time.localtime = _saved["localtime"]
    time.gmtime = _saved["gmtime"]
    time.mktime = _saved["mktime"]
    asyncio.set_event_loop_policy(_saved["policy"])
    _installed = False
