"""MicroPython time/asyncio semantics added to CPython by hugsim.band.shims (ticks wrap-around etc.)."""

import asyncio
import threading
import time

import pytest

from hugsim.band import runtime, shims
from hugsim.band.runner import sim_port

PERIOD = 1 << 30
HALF = PERIOD // 2


@pytest.fixture
def port():
    with sim_port({"name": "t", "mcu": "esp32c3", "button_pin": 3}) as band:
        yield band


def test_ticks_constants_match_micropython():
    assert shims.TICKS_PERIOD == 2**30
    assert shims.TICKS_MAX == 2**30 - 1


def test_ticks_add_wraps_at_the_period():
    assert shims.ticks_add(PERIOD - 1, 1) == 0
    assert shims.ticks_add(PERIOD - 10, 25) == 15
    assert shims.ticks_add(5, -10) == PERIOD - 5
    assert shims.ticks_add(0, HALF - 1) == HALF - 1


def test_ticks_add_rejects_deltas_ticks_diff_cannot_represent():
    with pytest.raises(OverflowError, match="ticks interval overflow"):
        shims.ticks_add(0, HALF)
    with pytest.raises(OverflowError):
        shims.ticks_add(0, -HALF)
    with pytest.raises(TypeError):
        shims.ticks_add(0, 1.5)


def test_ticks_diff_is_signed_and_wraps():
    # the documented example: a deadline computed with ticks_add is reached across the wrap
    start = PERIOD - 100
    deadline = shims.ticks_add(start, 200)
    assert deadline == 100
    assert shims.ticks_diff(deadline, start) == 200
    assert shims.ticks_diff(start, deadline) == -200
    assert shims.ticks_diff(5, PERIOD - 5) == 10
    assert shims.ticks_diff(PERIOD - 5, 5) == -10
    # range is [-HALF, HALF)
    assert shims.ticks_diff(HALF, 0) == -HALF
    assert shims.ticks_diff(HALF - 1, 0) == HALF - 1
    assert shims.ticks_diff(0, HALF - 1) == -(HALF - 1)


@pytest.mark.parametrize("t0", [0, 12345, PERIOD - 3, HALF])
@pytest.mark.parametrize("delta", [0, 1, 1000, HALF - 1, -1, -(HALF - 1)])
def test_ticks_add_then_diff_round_trips(t0, delta):
    assert shims.ticks_diff(shims.ticks_add(t0, delta), t0) == delta
    assert shims.ticks_diff(t0, shims.ticks_add(t0, delta)) == -delta


def test_ticks_ms_starts_at_boot_and_wraps(tmp_path):
    with sim_port({"name": "t"}, tmp_path, ticks_start_ms=PERIOD - 50):
        a = time.ticks_ms()
        assert PERIOD - 50 <= a < PERIOD
        time.sleep_ms(80)
        b = time.ticks_ms()
        assert b < 1000  # wrapped past 2**30
        assert 70 <= time.ticks_diff(b, a) < 1000
        assert 0 <= time.ticks_us() < PERIOD


def test_sleep_ms_and_sleep_us_block(port):
    t0 = time.monotonic()
    time.sleep_ms(30)
    time.sleep_us(10_000)
    assert time.monotonic() - t0 >= 0.039


def test_localtime_is_micropythons_8_tuple_in_the_firmware_thread_only(port):
    t = time.localtime(0)
    assert isinstance(t, tuple)
    assert len(t) == 8
    assert time.gmtime(86400)[:3] == (1970, 1, 2)
    assert time.mktime(time.gmtime(86400)) == time.mktime((*time.gmtime(86400), -1))
    other = []
    th = threading.Thread(target=lambda: other.append(time.localtime(0)))
    th.start()
    th.join()
    assert isinstance(other[0], time.struct_time)


def test_threadsafeflag_set_from_another_thread_wakes_the_waiter(port):
    async def run():
        flag = asyncio.ThreadSafeFlag()
        threading.Timer(0.05, flag.set).start()
        await asyncio.wait_for_ms(flag.wait(), 2000)
        # set before wait: returns at once, once
        flag.set()
        await asyncio.wait_for_ms(flag.wait(), 100)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for_ms(flag.wait(), 50)
        return True

    assert asyncio.run(run()) is True


def test_asyncio_sleep_ms_exists(port):
    async def run():
        t0 = time.monotonic()
        await asyncio.sleep_ms(20)
        return time.monotonic() - t0

    assert asyncio.run(run()) >= 0.019


def test_schedule_runs_in_the_firmware_loop_and_bounds_its_queue(port):
    import micropython

    ran = []
    main_ident = threading.get_ident()

    async def run():
        # from another thread, as an IRQ would
        th = threading.Thread(
            target=lambda: micropython.schedule(lambda a: ran.append((a, threading.get_ident())), 7)
        )
        th.start()
        th.join()
        for _ in range(50):
            if ran:
                break
            await asyncio.sleep_ms(5)

    asyncio.run(run())
    assert ran == [(7, main_ident)]
    for i in range(8):
        micropython.schedule(lambda a: None, i)
    with pytest.raises(RuntimeError, match="schedule queue full"):
        micropython.schedule(lambda a: None, 8)
    time.sleep_ms(1)  # sleeping runs what is pending
    assert runtime.scheduler.pending() == 0


def test_gc_and_sys_extras(port):
    import gc
    import sys

    assert gc.mem_free() > 0
    assert gc.mem_alloc() > 0
    assert callable(sys.print_exception)
