"""The band side of the simulated world: a virtual band's physics and the MicroPython stand-ins the
unmodified firmware runs on.

- :mod:`hugsim.band.world`: one band's physics (pins, button, touch, battery, outputs timeline).
- :mod:`hugsim.band.runtime`: process-wide handles (``world``, ``radio``, ``band``, scheduler).
- :mod:`hugsim.band.shims`: MicroPython extras added to CPython's ``time``/``asyncio``/``gc``/``sys``.
- :mod:`hugsim.band.runner`: runs the firmware in this process (``python -m hugsim.band.runner``).
- :mod:`hugsim.band.process`: starts virtual bands as processes of their own.
- :mod:`hugsim.band.mpband` and ``mp/``: virtual bands on the real MicroPython unix port (the default):
  the firmware image, the board modules in MicroPython, the supervisor (watchdog, resets, deep sleep).
- ``port/``: the sim port (``machine``, ``micropython``, ``neopixel``, ``esp32``, ``bluetooth``); a
  directory put first on ``sys.path`` in a band process, not a package.
"""
