"""hugsim: the simulated world the Hug Button firmware runs on (see DESIGN.md, "The simulated world").

- :mod:`hugsim.world`: one band's physics (pins, button, touch, battery, outputs timeline).
- :mod:`hugsim.runtime`: process-wide handles (``world``, ``radio``, ``band``, scheduler).
- :mod:`hugsim.shims`: MicroPython extras added to CPython's ``time``/``asyncio``/``gc``/``sys``.
- :mod:`hugsim.band`: the virtual band runner (``python -m hugsim.band``, ``run_band``).
- ``hugsim/port/``: the sim port (``machine``, ``micropython``, ``neopixel``, ``esp32``, ``bluetooth``);
  a directory put first on ``sys.path`` in a band process, not a package.
- :mod:`hugsim.airspace`: the simulated radio medium.
"""
