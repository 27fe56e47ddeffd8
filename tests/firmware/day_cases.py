"""The scripted day (bandday.run_day) as one case, under CPython and real MicroPython.

The heap figure needs the step-by-step driver (tests/firmware/test_day_heap.py); here the outcomes
of the day are checked in both interpreters.
"""

import bandday as day

MP_LIBS = ["tests/firmware/bandday.py"]


def case_scripted_day():
    r = day.run_day()
    assert r["presses"] == 24 and r["hugs_felt"] == 20
    assert r["press_frames"] == 26, "20 + the 3 unacknowledged sent twice (before and after reboot) + 1"
    assert r["rejected_before_reboot"] == 0


def case_scripted_day_on_the_s3_touch_board():
    # the same day on the S3 board: the core reads a touch board but the harness presses via on_button
    r = day.run_day("xiao_esp32s3")
    assert r["presses"] == 24 and r["hugs_felt"] == 20
