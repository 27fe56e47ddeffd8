"""CPython-side stub of MicroPython's `micropython` module, for pyright on app/ and protocol/.

Protocol code does `try: from micropython import const` with a CPython fallback; on CPython the
import fails at run time, and this stub tells pyright what `const` is. Same signature as the ESP32
stub (micropython-esp32-stubs), which the firmware check (tests/test_static.py) uses instead.
"""

from typing import TypeVar

Const_T = TypeVar("Const_T", int, float, str, bytes, tuple[object, ...])

def const(expr: Const_T, /) -> Const_T: ...
