"""The band side of the simulated world: virtual bands on the real MicroPython unix port.

- :mod:`hugsim.band.process`: ``BandProcess`` starts a virtual band as a process of its own;
  ``hugbutton band sim``.
- :mod:`hugsim.band.mpband`: the firmware image (``hugbutton band build``'s output), the heap cap and
  the supervisor (watchdog, resets, deep sleep and its wake).
- ``mp/``: MicroPython code, not a package: ``bandboot.py`` (what runs before the band's main.py)
  and the board modules the firmware imports (``machine``, ``bluetooth``, ``esp32``, ``neopixel``) on
  ``simlink`` (the airspace link and the board's physics).
"""
