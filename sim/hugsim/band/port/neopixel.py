"""Sim port of MicroPython's ``neopixel`` module: ``write()`` latches the pixels into the World
("led" output when the strip is on the board's ``led_pin`` with ``led_kind: "neopixel"``)."""

from hugsim.band import runtime as _rt


class NeoPixel:
    ORDER = (1, 0, 2, 3)  # GRB(W) on the wire, as in MicroPython's driver

    def __init__(self, pin, n, bpp=3, timing=1) -> None:
        import machine

        self.pin = pin if isinstance(pin, machine.Pin) else machine.Pin(pin)
        self.pin.init(machine.Pin.OUT)
        self.n = n
        self.bpp = bpp
        self.buf = bytearray(n * bpp)
        self.timing = timing

    def __len__(self) -> int:
        return self.n

    def __setitem__(self, i, v) -> None:
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("index out of range")
        offset = i * self.bpp
        for k in range(self.bpp):
            self.buf[offset + self.ORDER[k]] = v[k]

    def __getitem__(self, i) -> tuple:
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("index out of range")
        offset = i * self.bpp
        return tuple(self.buf[offset + self.ORDER[k]] for k in range(self.bpp))

    def fill(self, v) -> None:
        for i in range(self.n):
            self[i] = v

    def write(self) -> None:
        _rt.world.set_neopixel(self.pin._id, [self[i] for i in range(self.n)])
