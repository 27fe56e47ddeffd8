"""Gesture recogniser (hugband.button): runs under CPython and real MicroPython."""

from hugband import button
from hugband.button import FACTORY_RESET, PAIRING, SQUEEZE, TAP, EdgeLog, Gestures, TouchFilter


def drain(g):
    out = []
    ev = g.get()
    while ev is not None:
        out.append(ev)
        ev = g.get()
    return out


def run(g, t, until, step=5):
    while t < until:
        t += step
        g.poll(t)
    return t


def press(g, t, ms):
    """A clean press of ``ms`` starting at t; returns the release time."""
    g.update(True, t)
    t = run(g, t, t + ms)
    g.update(False, t)
    return t


def taps(g, t, n, down=80, up=150):
    for _ in range(n):
        t = press(g, t, down)
        t = run(g, t, t + up)
    return t


def case_bouncy_press_is_one_tap():
    g = Gestures()
    # contact bounce on press (0..12 ms) and on release (300..304 ms)
    for t, level in ((0, True), (3, False), (6, True), (9, False), (12, True)):
        g.update(level, t)
        g.poll(t)
    run(g, 12, 300)
    for t, level in ((300, False), (302, True), (304, False)):
        g.update(level, t)
        g.poll(t)
    run(g, 304, 1200)
    evs = drain(g)
    assert evs == [(TAP, 1, evs[0][2], 12)], evs
    assert g.bounces == 3  # changes that reverted within the debounce time


def case_glitch_shorter_than_debounce_is_ignored():
    g = Gestures()
    g.update(True, 100)
    g.update(False, 110)  # a 10 ms spike
    run(g, 110, 2000)
    assert drain(g) == []
    assert not g.pressed


def case_one_to_five_taps_are_counted():
    for n in range(1, 6):
        g = Gestures()
        t = taps(g, 1000, n)
        run(g, t, t + 600)
        evs = drain(g)
        assert len(evs) == 1 and evs[0][0] == TAP and evs[0][1] == n, (n, evs)


def case_fifth_tap_ends_the_gesture_and_sixth_starts_a_new_one():
    g = Gestures()
    t = taps(g, 0, 5, up=100)
    # the 5-tap gesture is reported at once, before the gap has passed
    evs = drain(g)
    assert [(e[0], e[1]) for e in evs] == [(TAP, 5)], evs
    t = taps(g, t, 1)
    run(g, t, t + 600)
    assert [(e[0], e[1]) for e in drain(g)] == [(TAP, 1)]


def case_taps_further_apart_than_the_gap_are_separate():
    g = Gestures()
    t = press(g, 0, 80)
    t = run(g, t, t + 450)
    t = press(g, t, 80)
    run(g, t, t + 600)
    assert [(e[0], e[1]) for e in drain(g)] == [(TAP, 1), (TAP, 1)]


def case_squeeze_intensity_mapping():
    seen = []
    for ms in (600, 1000, 1800, 2900, 3000, 4500):
        g = Gestures()
        t = press(g, 0, ms)
        run(g, t, t + 600)
        evs = drain(g)
        assert len(evs) == 1 and evs[0][0] == SQUEEZE, (ms, evs)
        assert abs(evs[0][2] - ms) <= 5, "duration reported"
        seen.append(evs[0][1])
    assert seen[0] == 64, seen
    assert seen[4] == 255 and seen[5] == 255, seen
    assert seen == sorted(seen) and seen[1] < seen[2] < seen[3] < 255, seen
    assert button.squeeze_intensity(0) == 64 and button.squeeze_intensity(100000) == 255


def case_just_under_squeeze_is_a_tap():
    g = Gestures()
    t = press(g, 0, 590)
    run(g, t, t + 600)
    assert [(e[0], e[1]) for e in drain(g)] == [(TAP, 1)]


def case_five_second_hold_fires_pairing_while_held():
    g = Gestures()
    g.update(True, 0)
    run(g, 0, 4990)
    assert drain(g) == []
    run(g, 4990, 5000)
    evs = drain(g)
    assert [(e[0], e[2]) for e in evs] == [(PAIRING, 5000)], evs
    assert g.pressed
    g.update(False, 7000)
    run(g, 7000, 8000)
    assert drain(g) == [], "release after pairing reports nothing (no squeeze)"


def case_ten_second_hold_fires_factory_reset_while_held():
    g = Gestures()
    g.update(True, 0)
    run(g, 0, 9995)
    assert [e[0] for e in drain(g)] == [PAIRING]
    run(g, 9995, 10000)
    assert [e[0] for e in drain(g)] == [FACTORY_RESET]
    run(g, 10000, 20000)
    g.update(False, 20000)
    run(g, 20000, 21000)
    assert drain(g) == []


def case_hold_release_between_polls_still_counts():
    # poll only every 1 s: a 7 s hold still yields exactly one PAIRING and nothing else
    g = Gestures()
    g.update(True, 0)
    g.poll(1000)
    g.update(False, 7000)
    g.poll(8000)
    g.poll(9000)
    assert [e[0] for e in drain(g)] == [PAIRING]


def case_pending_taps_are_reported_before_a_squeeze():
    g = Gestures()
    t = taps(g, 0, 2)
    t = press(g, t, 1500)
    run(g, t, t + 600)
    first = drain(g)[0]
    assert (first[0], first[1]) == (TAP, 2)


def case_works_across_tick_wraparound():
    g = Gestures()
    t0 = (1 << 30) - 300  # ticks_ms wraps at 2**30 on MicroPython
    g.update(True, t0)
    t = t0
    for _ in range(200):  # 1 s in 5 ms steps, wrapping the tick counter
        t = (t + 5) & ((1 << 30) - 1)
        g.poll(t)
    g.update(False, t)
    for _ in range(200):
        t = (t + 5) & ((1 << 30) - 1)
        g.poll(t)
    evs = drain(g)
    assert len(evs) == 1 and evs[0][0] == SQUEEZE and abs(evs[0][2] - 1000) <= 5, evs


def case_event_queue_is_bounded_newest_dropped():
    g = Gestures()
    t = 0
    for _ in range(10):  # ten single taps, nobody draining
        t = press(g, t, 80)
        t = run(g, t, t + 500)
    assert len(g) == 8 and g.dropped == 2
    assert len(drain(g)) == 8


def case_touch_filter_hysteresis_and_baseline():
    f = TouchFilter(0.1, rises=True, release=0.6)
    for _ in range(8):
        assert f.update(1000) is False  # calibration
    assert f.baseline == 1000
    assert f.update(1050) is False  # +5 %: not a touch
    assert f.update(1110) is True  # +11 %: touch
    assert f.update(1070) is True  # +7 % > 6 % release level: still touched
    assert f.update(1050) is False  # +5 %: released
    # slow drift is followed while untouched, so a later +11 % of the new baseline still counts
    for r in range(1000, 1061):
        for _ in range(10):
            assert f.update(r) is False
    assert 1050 <= f.baseline <= 1060, f.baseline
    assert f.update(1100) is False  # +10 % of the boot baseline, but only +4 % of the current one
    assert f.update(1180) is True


def case_touch_filter_falling_readings():
    f = TouchFilter(0.2, rises=False)
    for _ in range(8):
        f.update(500)
    assert f.update(420) is False
    assert f.update(390) is True
    assert f.update(460) is False


def case_edges_recorded_during_a_stall_make_the_tap_with_true_times():
    log = EdgeLog()
    # the main loop stalls from 1000 to 1400 ms; a 120 ms tap happens inside the stall
    log.record(1, 1100)
    log.record(0, 1220)
    g = Gestures()
    edge = log.take()
    while edge is not None:
        g.update(edge[0], edge[1])
        edge = log.take()
    g.update(False, 1400)  # the level sample after the stall: released
    run(g, 1400, 2000)
    assert drain(g) == [(TAP, 1, 120, 1100)]
    assert log.take() is None
    assert log.dropped == 0


def case_edge_log_is_bounded_newest_dropped_then_reusable():
    log = EdgeLog()
    for i in range(20):
        log.record(i % 2, 10 * i)
    assert log.dropped == 4
    got = []
    edge = log.take()
    while edge is not None:
        got.append(edge)
        edge = log.take()
    assert got == [(i % 2 == 1, 10 * i) for i in range(16)], got
    for lap in range(3):  # indices wrap: still first in, first out
        log.record(1, 1000 + lap)
        log.record(0, 2000 + lap)
        assert log.take() == (True, 1000 + lap)
        assert log.take() == (False, 2000 + lap)
        assert log.take() is None
