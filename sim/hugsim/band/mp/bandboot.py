"""Boot a virtual band on the MicroPython unix port: what the ROM and MicroPython do before /main.py.

    micropython -X heapsize=CAP bandboot.py AIRSPACE ADDRESS RESET_CAUSE WAKE_REASON [FLAGS]

run with the band's flash (a directory: lib/*.mpy, main.py, board.json, the firmware's files) as
the working directory. FLAGS: ``print`` (outputs as JSON lines on stdout), ``held`` (the heart is
pressed at boot: it woke the band). Started and restarted by ``hugsim.band.process``.
"""

import sys

_here = sys.path[0]
sys.path[:] = [_here, "", ".frozen", "lib"]  # the board modules, then the ESP32 path

import asyncio
import json

import simlink


def _board() -> dict:
    try:
        with open("board.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


async def _halted() -> None:
    """The firmware ended (REPL on a band): the radio and the heart stay alive, nothing else runs."""
    while True:
        await asyncio.sleep_ms(1000)


def boot() -> None:
    airspace, address, cause, wake = sys.argv[1:5]
    flags = sys.argv[5:]
    simlink.board = _board()
    simlink.reset_cause = int(cause)
    simlink.wake_reason = int(wake)
    simlink.print_outputs = "print" in flags
    simlink.connect(airspace, address)
    simlink.line({"ready": True, "address": simlink.address, "board": simlink.board.get("name")})
    if "held" in flags:
        simlink.set_button(True)
    simlink.emit("power", "active")
    simlink.emit("cpu_hz", 160_000_000)
    simlink.emit("boot", {"reset_cause": int(cause), "wake_reason": int(wake)})
    asyncio.create_task(simlink.serve())
    asyncio.create_task(simlink.heap_sampler())
    try:
        with open("main.py") as f:
            source = f.read()
        exec(source, {"__name__": "__main__"})
    except Exception as e:  # noqa: BLE001 - on a band an exception out of main.py drops to the REPL
        sys.print_exception(e)
        simlink.emit("crash", "%s: %s" % (type(e).__name__, e))
    simlink.emit("power", "halted")
    simlink.line({"halted": True})
    asyncio.run(_halted())


boot()
