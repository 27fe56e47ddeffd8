"""The band runner: press -> IRQ -> PWM -> timeline, reboots keeping flash, WDT, deep sleep, CLI."""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hugband.board import BoardError
from hugsim.band import runtime
from hugsim.band.runner import Band, load_board, run_band

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
PWRON, WDT, DEEPSLEEP, SOFT = 1, 3, 4, 5
EXT0_WAKE, TIMER_WAKE = 2, 4


def band(state, entry="blinky:main", **kw) -> Band:
    return run_band(BOARD, state, entry="fake_firmware." + entry, extra_paths=[HERE], **kw)


def boots_file(state, n=None, timeout=5.0) -> list:
    """The firmware's own boot log; with ``n``, wait (bounded) until it has ``n`` lines."""
    path = Path(state) / "boots.txt"
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if n is None or len(lines) >= n or time.monotonic() > deadline:
            return [tuple(map(int, line.split())) for line in lines]
        time.sleep(0.01)


def test_press_buzzes_the_motor_through_irq_and_pwm(tmp_path):
    with band(tmp_path) as b:
        w = b.world
        w.wait_for("motor", lambda v: v == 0.0, timeout=5)  # firmware set up its PWM, silent
        t_press = w.now_ms()
        w.press()
        t, duty = w.wait_for("motor", lambda v: v > 0, timeout=5, since_ms=t_press)
        assert duty == pytest.approx(49151 / 65535)
        assert t - t_press < 1000
        w.wait_for("led", lambda v: v == 1, timeout=5, since_ms=t_press)
        t_rel = w.now_ms()
        w.release()
        w.wait_for("motor", lambda v: v == 0.0, timeout=5, since_ms=t_rel)
        w.wait_for("led", lambda v: v == 0, timeout=5, since_ms=t_rel)
        assert (tmp_path / "presses.txt").read_text() == "1"
    assert runtime.band is None  # the process is restored
    assert "machine" not in sys.modules
    assert os.getcwd() != str(tmp_path)


def test_flash_survives_a_process_restart(tmp_path):
    for n in (1, 2):
        with band(tmp_path) as b:
            b.world.wait_for("motor", lambda v: v == 0.0, timeout=5)
            t0 = b.world.now_ms()
            b.world.press()
            b.world.wait_for("motor", lambda v: v > 0, timeout=5, since_ms=t0)
            b.world.release()
            b.world.wait_for("motor", lambda v: v == 0.0, timeout=5, since_ms=t0)
        assert (tmp_path / "presses.txt").read_text() == str(n)
    assert boots_file(tmp_path, 2) == [(PWRON, 0), (PWRON, 0)]


def test_machine_reset_restarts_the_firmware_with_fresh_modules_and_kept_files(tmp_path):
    with band(tmp_path, "blinky:reset_main") as b:
        second = b.wait_boot(2, timeout=5)
        assert second["reset_cause"] == SOFT
        assert boots_file(tmp_path, 2) == [(PWRON, 0), (SOFT, 0)]
        time.sleep(0.1)
        assert len(b.boots) == 2  # the second boot does not reset again


def test_an_unfed_watchdog_reboots_the_band_with_wdt_reset(tmp_path):
    with band(tmp_path, "blinky:wdt_main") as b:
        second = b.wait_boot(2, timeout=5)
        assert second["reset_cause"] == WDT
        # armed at ~0 ms, last fed at ~300 ms, 1 s timeout: expires at ~1.3 s
        assert 1100 <= second["t_ms"] - b.boots[0]["t_ms"] < 3000
        assert boots_file(tmp_path, 2) == [(PWRON, 0), (WDT, 0)]
        time.sleep(1.3)
        assert len(b.boots) == 2  # fed on the second boot: no further resets


def test_the_watchdog_interrupts_a_firmware_blocked_in_its_event_loop(tmp_path):
    with band(tmp_path, "blinky:wdt_async_main") as b:
        assert b.wait_boot(2, timeout=5)["reset_cause"] == WDT


def test_deepsleep_wakes_on_the_button(tmp_path):
    with band(tmp_path, "blinky:sleep_main") as b:
        b.world.wait_for("power", lambda v: v == "deepsleep", timeout=5)
        assert len(b.boots) == 1
        time.sleep(0.1)
        assert len(b.boots) == 1  # asleep until something wakes it
        b.world.press()
        second = b.wait_boot(2, timeout=5)
        assert (second["reset_cause"], second["wake_reason"]) == (DEEPSLEEP, EXT0_WAKE)
        assert boots_file(tmp_path, 2) == [(PWRON, 0), (DEEPSLEEP, EXT0_WAKE)]


def test_deepsleep_wakes_on_its_timer(tmp_path):
    with band(tmp_path, "blinky:timer_sleep_main") as b:
        second = b.wait_boot(2, timeout=5)
        assert (second["reset_cause"], second["wake_reason"]) == (DEEPSLEEP, TIMER_WAKE)
        assert second["t_ms"] - b.boots[0]["t_ms"] >= 190


def test_a_crashing_firmware_halts_and_a_power_cycle_restarts_it(tmp_path):
    with band(tmp_path, "blinky:crash_main") as b:
        b.world.wait_for("crash", timeout=5)
        b.world.wait_for("power", lambda v: v == "halted", timeout=5)
        assert len(b.boots) == 1
        b.power_cycle()
        assert b.wait_boot(2, timeout=5)["reset_cause"] == PWRON
    assert isinstance(b.crashes[0], ValueError)


def test_load_board_reads_the_firmware_board_files():
    boards = sorted((REPO / "firmware" / "hugband" / "boards").glob("*.json"))
    if not boards:
        pytest.skip("no board files yet")
    data = load_board(boards[0].stem)
    assert data["name"] == boards[0].stem
    assert data["touch_rises"] in (True, False)  # checked by the firmware's loader: defaults filled in
    with pytest.raises(BoardError, match="unknown board 'no_such_board'"):
        load_board("no_such_board")


def test_cli_runs_a_band_driven_from_stdin(tmp_path):
    board = tmp_path / "board.json"
    board.write_text(json.dumps(BOARD))
    state = tmp_path / "flash"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hugsim.band.runner",
            "--board",
            str(board),
            "--state",
            str(state),
            "--entry",
            "fake_firmware.blinky:main",
            "--path",
            str(HERE),
            "--control",
            "stdin",
            "--print-outputs",
            "--address",
            "C0:FF:EE:00:00:42",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(x)) for x in proc.stdout], daemon=True).start()

    def next_event(deadline):
        return lines.get(timeout=max(0.01, deadline - time.monotonic()))

    try:
        deadline = time.monotonic() + 10
        seen = []
        while not (seen and seen[-1].get("ready")):  # first-boot outputs may precede the ready line
            seen.append(next_event(deadline))
        assert seen[-1]["address"] == "C0:FF:EE:00:00:42"
        while not any(e.get("kind") == "motor" for e in seen):  # the firmware's PWM is set up
            seen.append(next_event(deadline))
        proc.stdin.write("press 300\n")
        proc.stdin.flush()
        motor = []
        while not (any(motor) and motor[-1] == 0.0):
            e = next_event(deadline)
            assert e.get("kind") != "crash", e
            if e.get("kind") == "motor":
                motor.append(e["value"])
        assert max(motor) == pytest.approx(49151 / 65535, abs=1e-4)
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (state / "presses.txt").read_text() == "1"
