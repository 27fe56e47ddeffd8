"""``neopixel`` for a virtual band on the MicroPython unix port: ``write()`` latches the pixels
(the "led" output when the strip is the board's LED)."""

import simlink


class NeoPixel:
    def __init__(self, pin, n, bpp=3, timing=1) -> None:
        self.pin = pin
        self.n = n
        self.bpp = bpp
        self.buf = [(0,) * bpp] * n

    def __len__(self) -> int:
        return self.n

    def __setitem__(self, i, v) -> None:
        self.buf[i] = tuple(v)

    def __getitem__(self, i) -> tuple:
        return self.buf[i]

    def fill(self, v) -> None:
        for i in range(self.n):
            self.buf[i] = tuple(v)

    def write(self) -> None:
        pin = self.pin._id
        b = simlink.board
        if pin == b.get("led_pin") and b.get("led_kind") == "neopixel":
            simlink.emit("led", self.buf[0] if self.n == 1 else tuple(self.buf))
        else:
            simlink.emit("neopixel", (pin, tuple(self.buf)), ("neopixel", pin))
