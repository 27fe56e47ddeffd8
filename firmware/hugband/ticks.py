"""Tick arithmetic for pure modules, with MicroPython's wrapping ``ticks_ms`` semantics.

The shell passes ``time.ticks_ms()`` values as plain ints. On MicroPython they wrap modulo 2**30
(``TICKS_PERIOD``), so a later time may be numerically smaller. ``diff`` behaves like
``time.ticks_diff``: signed, correct while the two times are less than 2**29 ms (~6.2 days) apart.
"""

from hugproto.compat import const

_PERIOD = const(0x40000000)  # 2**30, MicroPython's TICKS_PERIOD
_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)


def diff(later: int, earlier: int) -> int:
    """Signed ``later - earlier`` in ms, like ``time.ticks_diff(later, earlier)``."""
    return ((later - earlier + _HALF) & _MASK) - _HALF


def add(t: int, delta: int) -> int:
    """``t + delta`` wrapped into the ticks range, like ``time.ticks_add``."""
    return (t + delta) & _MASK
