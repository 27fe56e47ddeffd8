"""Sim port of MicroPython's ``micropython`` module (CPython stand-in for the virtual band).

``const`` is the identity; ``schedule`` queues ``func(arg)`` for the firmware thread (see
``hugsim.band.scheduler``; raises ``RuntimeError("schedule queue full")`` past 8 entries, like the esp32
port); the memory functions are harmless stand-ins.
"""

from hugsim.band import runtime as _runtime
from hugsim.band import shims as _shims


def const(expr):
    return expr


def schedule(func, arg, /) -> None:
    if not _runtime.scheduler.schedule(func, arg):
        raise RuntimeError("schedule queue full")


def alloc_emergency_exception_buf(size, /) -> None:
    return None


def opt_level(level=None, /):
    return 0 if level is None else None


def mem_info(verbose=None, /) -> None:
    print("stack: 1024 out of 15360")
    print("GC: total: %d, used: %d, free: %d" % (_shims.HEAP_BYTES, _shims._mem_alloc(), _shims._mem_free()))


def qstr_info(verbose=None, /) -> None:
    print("qstr pool: n_pool=1, n_qstr=0, n_str_data_bytes=0, n_total_bytes=0")


def stack_use() -> int:
    return 1024


_heap_locked = [0]


def heap_lock() -> int:
    _heap_locked[0] += 1
    return _heap_locked[0] - 1


def heap_unlock() -> int:
    _heap_locked[0] = max(0, _heap_locked[0] - 1)
    return _heap_locked[0]


def heap_locked() -> int:
    return _heap_locked[0]


def kbd_intr(chr, /) -> None:
    return None


def native(f):
    return f


def viper(f):
    return f
