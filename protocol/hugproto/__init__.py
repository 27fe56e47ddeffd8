"""hugproto: the Hug Button wire format, shared by the band (MicroPython) and the app (CPython).

Sans-io: bytes in, objects out. No sockets, BLE or clocks in here.
"""
