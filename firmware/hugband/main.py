"""Entry point on the band: MicroPython runs /main.py after boot.

Bluetooth is switched on first, before the large imports: allocating tens of KB before
``ble.active(True)`` crashed a C3 (MicroPython issue 14293), and NimBLE takes its RAM from the
same pool the GC heap grows into. An exception that escapes the firmware is appended to
``crash.log`` in flash (one older log kept as ``crash.log.1``) and the band resets: it comes back
instead of sitting at the REPL. Ctrl-C (KeyboardInterrupt) still reaches the REPL.
"""

CRASH_LOG = "crash.log"
_CRASH_LOG_MAX = 4096


def log_crash(exc) -> None:
    import gc
    import os
    import sys

    gc.collect()  # a MemoryError left the heap full of the dead loop's objects
    try:
        if os.stat(CRASH_LOG)[6] > _CRASH_LOG_MAX:
            os.rename(CRASH_LOG, CRASH_LOG + ".1")
    except OSError:
        pass
    try:
        with open(CRASH_LOG, "a") as f:
            f.write("--- crash\n")
            sys.print_exception(exc, f)
    except OSError:
        pass  # a full or broken flash: still reset
    sys.print_exception(exc)


def main() -> None:
    import bluetooth
    import machine

    bluetooth.BLE().active(True)
    try:
        from hugband import app

        app.run()
    except Exception as exc:  # noqa: BLE001 - anything that escapes: log it in flash and come back
        log_crash(exc)
        machine.reset()


if __name__ == "__main__":
    main()
