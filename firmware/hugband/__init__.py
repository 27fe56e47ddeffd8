"""hugband: the Hug Button wristband firmware (MicroPython on ESP32).

The pure state machines (button, haptics, outbox, power, led, core) take an explicit ``now_ms`` and touch
no hardware, so the same files run on the band, under the CPython sim port and in real MicroPython tests.
The hardware shell (``ble``, ``app``, ``main``) polls the pins and the radio and feeds them.
"""
