"""Haptic pattern player (hugband.haptics): runs under CPython and real MicroPython."""

from hugband.haptics import Player, drv2605_rtp
from hugproto import patterns


def steps(*pairs):
    """Steps from (level, ms) pairs (ms in multiples of 10)."""
    b = bytearray()
    for level, ms in pairs:
        b.append(level)
        b.append(ms // 10)
    return b, len(pairs)


def timeline(p, start, end, step=1):
    """[(t, duty)] for every change the player reports between start and end."""
    out = []
    t = start
    while t <= end:
        d = p.poll(t)
        if d is not None:
            out.append((t, d))
        t += step
    return out


def case_overdrive_kick_then_level_then_off():
    p = Player()
    b, n = steps((102, 100))
    assert p.start(b, n, 0, token=7)
    tl = timeline(p, 0, 300)
    assert tl == [(0, 1023), (25, 102 * 1023 // 255), (100, 0)], tl
    assert p.pop_done() == 7 and p.pop_done() is None
    assert not p.busy


def case_no_kick_between_consecutive_pulses():
    p = Player()
    b, n = steps((255, 50), (128, 50), (0, 20), (128, 50))
    p.start(b, n, 1000)
    tl = timeline(p, 1000, 1300)
    half = 128 * 1023 // 255
    assert tl == [(1000, 1023), (1050, half), (1100, 0), (1120, 1023), (1145, half), (1170, 0)], tl


def case_kick_is_no_longer_than_a_short_step():
    p = Player()
    b, n = steps((60, 10), (0, 10))
    p.start(b, n, 0)
    assert timeline(p, 0, 100) == [(0, 1023), (10, 0)]


def case_max_duty_caps_everything_including_the_kick():
    p = Player(max_duty=512)
    b, n = steps((255, 100), (51, 100))
    p.start(b, n, 0)
    tl = timeline(p, 0, 300)
    assert tl == [(0, 512), (100, 51 * 512 // 255), (200, 0)], tl
    assert max(d for _, d in tl) == 512


def case_intensity_is_applied_by_the_renderer():
    buf = bytearray(patterns.BUFFER_SIZE)
    peaks = []
    for intensity in (80, 160, 255):
        n = patterns.render(patterns.HUG, 0, intensity, 1, buf)
        p = Player(kick_ms=0)
        p.start(buf, n, 0)
        tl = timeline(p, 0, patterns.duration_ms(buf, n) + 10, 5)
        peaks.append(max(d for _, d in tl))
    assert peaks[0] < peaks[1] < peaks[2], peaks


def case_rendered_pattern_plays_for_its_duration():
    buf = bytearray(patterns.BUFFER_SIZE)
    n = patterns.render(patterns.BIG_HUG, 3, 200, 2, buf)
    total = patterns.duration_ms(buf, n)
    p = Player()
    p.start(buf, n, 0, token=1)
    t = 0
    while p.busy:
        t += 5
        p.poll(t)
    assert total <= t < total + 5, (t, total)
    assert p.level == 0 and p.pop_done() == 1
    on = 0
    for i in range(n):
        if buf[2 * i]:
            on += buf[2 * i + 1] * 10
    assert p.on_ms == on, (p.on_ms, on)


def case_queue_holds_four_waiting_newest_dropped():
    p = Player()
    b, n = steps((200, 100), (0, 50))
    for token in range(5):
        assert p.start(b, n, 0, token)
    assert p.waiting == 4
    assert not p.start(b, n, 0, 99), "sixth pattern is refused"
    assert p.dropped == 1
    t = 0
    while p.busy:
        t += 5
        p.poll(t)
    assert t == 750, "five patterns of 150 ms back to back"
    done = []
    tok = p.pop_done()
    while tok is not None:
        done.append(tok)
        tok = p.pop_done()
    assert done == [0, 1, 2, 3, 4]
    assert p.played == 5


def case_late_poll_does_not_stretch_the_pattern():
    p = Player()
    b, n = steps((200, 100), (0, 100), (200, 100))
    p.start(b, n, 0, token=3)
    p.poll(0)
    assert p.poll(10000) == 0
    assert not p.busy and p.pop_done() == 3


def case_stop_clears_without_reporting():
    p = Player()
    b, n = steps((200, 100))
    p.start(b, n, 0, token=1)
    p.start(b, n, 0, token=2)
    p.poll(10)
    assert p.stop(20) == 0
    assert not p.busy and p.pop_done() is None
    assert p.poll(30) is None  # the 0 was handed over by stop()


def case_negative_tokens_are_not_reported():
    p = Player()
    b, n = steps((200, 20))
    p.start(b, n, 0)
    p.poll(100)
    assert p.pop_done() is None and p.played == 1


def case_works_across_tick_wraparound():
    p = Player()
    b, n = steps((100, 100))
    t0 = (1 << 30) - 40
    p.start(b, n, t0)
    tl = []
    t = t0
    for _ in range(40):
        t = (t + 5) & ((1 << 30) - 1)
        d = p.poll(t)
        if d is not None:
            tl.append((t, d))
    assert tl == [(t0 + 5, 1023), (t0 + 25, 100 * 1023 // 255), (60, 0)], tl


def case_drv2605l_rtp_mapping():
    assert drv2605_rtp(0) == 0 and drv2605_rtp(-5) == 0
    assert drv2605_rtp(1023) == 127 and drv2605_rtp(5000) == 127
    assert drv2605_rtp(1) == 1, "a non-zero duty never rounds to off"
    assert drv2605_rtp(512) == 64
    prev = 0
    for duty in range(0, 1024, 7):
        v = drv2605_rtp(duty)
        assert prev <= v <= 127
        prev = v
