"""hugsim: the simulated world the Hug Button runs on without hardware (see DESIGN.md, "The simulated
world"). Only the physics is simulated; the product's own code runs unmodified on top.

- :mod:`hugsim.band`: the band side (physics, MicroPython stand-ins, the band runner and launcher).
- :mod:`hugsim.airspace`: the radio medium shared by band and phone processes.
- :mod:`hugsim.phone`: the phone side (a bleak backend for the airspace, a simulated BlueZ).

No product module imports this package; the app's dev wing (``hugapp.dev``) chooses it.
"""
