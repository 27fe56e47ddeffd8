"""Non-blocking haptic pattern player, pure and driven by ``now_ms``.

Patterns arrive already rendered by ``hugproto.patterns.render`` (intensity applied): ``n`` steps of
(level 0..255, duration in 10 ms units) byte pairs. ``start`` copies them into one of a fixed set of
preallocated slots; ``poll(now_ms)`` returns the motor duty 0..1023 whenever it changes (None when it
does not), and the shell writes it to the PWM (or, via ``drv2605_rtp``, to a DRV2605L). No callbacks:
the shell polls every ~5-10 ms while ``busy`` and can sleep longer otherwise.

- **Overdrive kick**: an ERM spins up slowly, so when a pulse starts from rest the first ``kick_ms``
  (25 ms, or the whole step if shorter) play at ``max_duty`` before settling to the step's level.
- **max_duty** caps every output (motor rating vs. battery voltage, or a user strength setting).
- **Queue**: one playing pattern plus up to ``depth`` (default 4) waiting. When all slots are full the
  newest pattern is refused: ``start`` returns False and ``dropped`` counts it.
- **Tokens**: each pattern carries an int token; when a pattern has played to its end its token goes to
  a small "done" ring that the owner reads with ``pop_done()`` (BandLogic turns them into Felt events).
  Patterns removed by ``stop()`` are not reported as done. Tokens < 0 are never reported.
  The ring holds ``depth + 1`` tokens; if the owner never reads it the oldest are overwritten
  (``done_lost`` counts them).

Timing is kept on the pattern's own clock (each step ends at its scheduled time, not "poll + duration"),
so late polls do not stretch a pattern; a step entirely missed by a very late poll is skipped.
"""

from hugband.ticks import add, diff
from hugproto.compat import const
from hugproto.patterns import BUFFER_SIZE, STEP_MS

MAX_DUTY = const(1023)
_KICK_MS = const(25)
_DEPTH = const(4)


def drv2605_rtp(duty: int) -> int:
    """Motor duty 0..1023 -> DRV2605L real-time-playback value 0..127 (signed RTP format, ERM)."""
    if duty <= 0:
        return 0
    if duty >= 1023:
        return 127
    v = (duty * 127 + 511) // 1023
    return v if v > 0 else 1


# DRV2605L set-up for open-loop ERM real-time playback, as (register, value) writes in order:
# MODE=0 (leave standby), FEEDBACK=0x36 (ERM, reset defaults), CONTROL3=0xA0 (ERM open loop, signed
# RTP), RTP input 0, MODE=5 (real-time playback). Then each duty change is one write of
# drv2605_rtp(duty) to DRV2605_REG_RTP.
DRV2605_ADDR = const(0x5A)
DRV2605_REG_RTP = const(0x02)
DRV2605_INIT = ((0x01, 0x00), (0x1A, 0x36), (0x1D, 0xA0), (0x02, 0x00), (0x01, 0x05))


class Player:
    """Plays rendered haptic patterns one after another; see the module notes."""

    def __init__(self, max_duty: int = MAX_DUTY, kick_ms: int = _KICK_MS, depth: int = _DEPTH) -> None:
        self.max_duty = max_duty
        self.kick_ms = kick_ms
        self._nslots = depth + 1
        self._bufs = [bytearray(BUFFER_SIZE) for _ in range(self._nslots)]
        self._lens = [0] * self._nslots
        self._tokens = [0] * self._nslots
        self._head = 0  # slot of the playing pattern (when _count > 0)
        self._count = 0  # patterns held: the playing one plus those waiting
        self._playing = False
        self._step = 0
        self._step_end = 0  # ticks when the current step ends
        self._kick_end = 0
        self._kicking = False
        self._out = 0  # current duty
        self._reported = 0  # last duty returned by poll
        self._done = [0] * self._nslots
        self._done_head = 0
        self._done_len = 0
        self.dropped = 0
        self.done_lost = 0
        self.played = 0
        self.on_ms = 0  # accumulated time with the motor driven (for the energy model)
        self._on_since = 0

    @property
    def busy(self) -> bool:
        """A pattern is playing or waiting."""
        return self._count > 0

    @property
    def playing_token(self) -> int:
        """Token of the pattern playing now, or -1."""
        return self._tokens[self._head] if self._playing and self._count else -1

    @property
    def level(self) -> int:
        """The current duty (0 when idle)."""
        return self._out

    @property
    def waiting(self) -> int:
        """How many patterns wait behind the playing one."""
        return self._count - 1 if self._count else 0

    def start(self, steps, n_steps: int, now_ms: int, token: int = -1) -> bool:
        """Queue ``n_steps`` (level, 10 ms) pairs from ``steps``; False if the queue is full (dropped)."""
        if self._count >= self._nslots:
            self.dropped += 1
            return False
        n = n_steps if 2 * n_steps <= BUFFER_SIZE else BUFFER_SIZE // 2
        slot = (self._head + self._count) % self._nslots
        buf = self._bufs[slot]
        for i in range(2 * n):
            buf[i] = steps[i]
        self._lens[slot] = n
        self._tokens[slot] = token
        self._count += 1
        if not self._playing:
            self._begin(now_ms)
        return True

    def stop(self, now_ms: int) -> int:
        """Stop everything (nothing is reported done); return duty 0 for the shell to write."""
        self._count = 0
        self._playing = False
        self._set(0, now_ms)
        self._reported = 0
        return 0

    def pop_done(self):
        """Token of the oldest pattern that finished playing, or None."""
        if not self._done_len:
            return None
        t = self._done[self._done_head]
        self._done_head = (self._done_head + 1) % self._nslots
        self._done_len -= 1
        return t

    def poll(self, now_ms: int):
        """Advance; return the new motor duty 0..1023 if it changed since the last poll, else None."""
        while self._playing:
            if self._kicking and diff(now_ms, self._kick_end) >= 0:
                self._kicking = False
                self._apply(self._kick_end)
            if diff(now_ms, self._step_end) < 0:
                break
            self._next_step(now_ms)
        if self._out == self._reported:
            return None
        self._reported = self._out
        return self._out

    # -- internals -----------------------------------------------------------------------------
    def _duty(self, level: int) -> int:
        return level * self.max_duty // 255

    def _set(self, duty: int, now_ms: int) -> None:
        if duty and not self._out:
            self._on_since = now_ms
        elif self._out and not duty:
            self.on_ms += diff(now_ms, self._on_since)
        self._out = duty

    def _begin(self, start_ms: int) -> None:
        self._playing = True
        self._step = -1
        self._step_end = start_ms
        self._kicking = False
        self._next_step(start_ms)

    def _next_step(self, now_ms: int) -> None:
        """The step that ended at ``_step_end`` is over: start the next (or the next pattern)."""
        t = self._step_end
        self._step += 1
        slot = self._head
        if self._step >= self._lens[slot]:
            self._finish(t, now_ms)
            return
        dur = self._bufs[slot][2 * self._step + 1] * STEP_MS
        self._step_end = add(t, dur)
        level = self._bufs[slot][2 * self._step]
        if level and not self._out and diff(now_ms, self._step_end) < 0:
            # from rest: kick at full allowed power first
            self._kicking = True
            self._kick_end = add(t, self.kick_ms if self.kick_ms < dur else dur)
            if diff(now_ms, self._kick_end) < 0:
                self._set(self.max_duty, t)
                return
            self._kicking = False
        self._apply(t)

    def _apply(self, t: int) -> None:
        self._set(self._duty(self._bufs[self._head][2 * self._step]), t)

    def _finish(self, t: int, now_ms: int) -> None:
        slot = self._head
        token = self._tokens[slot]
        self.played += 1
        if token >= 0:
            if self._done_len >= self._nslots:
                self._done_head = (self._done_head + 1) % self._nslots
                self._done_len -= 1
                self.done_lost += 1
            self._done[(self._done_head + self._done_len) % self._nslots] = token
            self._done_len += 1
        self._head = (self._head + 1) % self._nslots
        self._count -= 1
        self._playing = False
        if self._count:
            # the next pattern starts where this one ended, unless the poll is far behind
            start = t if diff(now_ms, t) < self.kick_ms else now_ms
            self._begin(start)
        else:
            self._set(0, t)
