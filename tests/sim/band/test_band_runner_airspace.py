"""A band process on the real airspace: a press sent by a control client buzzes the band's motor,
and the output reaches the airspace timeline (runner <-> PeripheralRadio wiring)."""

import asyncio
import json
import sys
from pathlib import Path

import pytest

from hugsim.airspace import Airspace, AirspaceControl

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
BOARD = {
    "name": "testboard",
    "mcu": "esp32",
    "button_pin": 3,
    "button_active_low": True,
    "motor_pin": 4,
    "led_pin": 5,
    "led_kind": "pin",
}
ADDR = "C0:FF:EE:00:00:77"


async def _scenario(tmp_path) -> list:
    board = tmp_path / "board.json"
    board.write_text(json.dumps(BOARD))
    server = Airspace()
    addr = await server.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hugsim.band.runner",
        "--board",
        str(board),
        "--state",
        str(tmp_path / "flash"),
        "--airspace",
        addr,
        "--address",
        ADDR,
        "--entry",
        "fake_firmware.blinky:main",
        "--path",
        str(HERE),
        stdout=asyncio.subprocess.PIPE,
        cwd=str(REPO),
    )
    try:
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        assert ready["ready"]
        assert ready["address"] == ADDR
        async with AirspaceControl(addr) as ctl:
            await ctl.wait_node(ADDR, timeout=10)
            await ctl.wait_output(ADDR, "motor", lambda v: v == 0, since_ms=0, timeout=10)  # ready
            t0 = await ctl.now()
            await ctl.hold(ADDR, 300)
            on = await ctl.wait_output(ADDR, "motor", lambda v: v > 0, since_ms=t0, timeout=10)
            off = await ctl.wait_output(ADDR, "motor", lambda v: v == 0, since_ms=on.t_ms, timeout=10)
            return [on, off]
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
        await server.close()


def test_a_press_from_the_airspace_buzzes_the_band_and_is_reported(tmp_path):
    on, off = asyncio.run(_scenario(tmp_path))
    assert on.value == pytest.approx(49151 / 65535, abs=1e-4)
    assert 200 <= off.t_ms - on.t_ms < 2000  # held 300 ms
    assert (tmp_path / "flash" / "presses.txt").read_text() == "1"
