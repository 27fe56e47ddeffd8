"""``esp32`` for a virtual band on the MicroPython unix port: the deep-sleep wake sources a band arms.

They are kept in ``simlink.wake`` and handed to the supervisor by ``machine.deepsleep()``, which wakes
the band when one fires (the heart pressed at the armed level, a touch) or its timer runs out.
"""

import simlink

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True


def _ids(pins) -> list:
    return [p._id if hasattr(p, "_id") else p for p in pins]


def wake_on_ext0(pin, level) -> None:
    if simlink.board.get("mcu") == "esp32c3":
        raise ValueError("no ext0 wake on this chip")
    simlink.wake["ext0"] = (_ids((pin,))[0], 1 if level else 0)


def wake_on_ext1(pins, level) -> None:
    simlink.wake["ext1"] = (_ids(pins), 1 if level else 0)


def wake_on_gpio(pins, level) -> None:
    simlink.wake["gpio"] = (_ids(pins), 1 if level else 0)


def wake_on_touch(wake) -> None:
    simlink.wake["touch"] = bool(wake)
