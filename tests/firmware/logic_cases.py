"""BandLogic (hugband.logic): security rules and outcomes. Runs under CPython and real MicroPython.

The Harness and FakePhone from bandday play the shell and the phone; outcomes are what buzzed
(motor runs), what the phone received and what was stored.
"""

from bandday import FakePhone, Harness, Rng

from hugband import board as boards
from hugband import logic
from hugband.outbox import Outbox
from hugband.store import MemBlob
from hugproto import frames, patterns

MP_LIBS = ["tests/firmware/bandday.py"]

KEY = b"0123456789abcdef"
OTHER = b"fedcba9876543210"


def unpaired(seed=7):
    rng = Rng(seed)
    return Harness(boards.load(), MemBlob(), MemBlob(), rng), rng


def open_window(h):
    h.core.on_button(True, h.now)
    h.run(5100)
    h.core.on_button(False, h.now)
    h.run(1000)  # the pairing buzz


def paired(seed=7):
    h, rng = unpaired(seed)
    open_window(h)
    phone = FakePhone(KEY, rng)
    h.connect(phone)
    assert phone.pair(h)
    assert phone.authed
    h.run(2500)  # the "paired" buzz (up to 2.3 s)
    return h, phone


def stranger_auth(h, key, rng):
    """Write an Auth made with ``key`` for the current connection (the State read unverified)."""
    st = frames.decode_state(h.phone.state, None)
    auth, _ = frames.phone_session(key, st.nonce, rng(8))
    h.write(auth)


def case_pairing_then_auth_gives_auth_ok_with_state():
    h, phone = paired()
    assert h.core.paired and h.core.authenticated and not h.core.pairing_open
    ok = phone.last_auth_ok
    assert ok.flags & frames.FLAG_PAIRED and not ok.flags & frames.FLAG_PAIRING_OPEN
    assert h.core.rejected == 0


def case_unpaired_band_refuses_auth():
    h, rng = unpaired()
    phone = FakePhone(KEY, rng)
    h.connect(phone)
    st = frames.decode_state(phone.state, frames.UNPAIRED_KEY)
    assert not st.flags & frames.FLAG_PAIRED
    stranger_auth(h, KEY, rng)
    assert not h.core.authenticated and h.core.rejected == 1 and h.notifies == 0


def case_pairing_outside_the_window_is_rejected():
    h, rng = unpaired()
    phone = FakePhone(KEY, rng)
    h.connect(phone)
    assert not phone.pair(h, check_open=False)
    assert not h.core.paired and h.core.rejected == 2 and phone.band_pub_frames == 0  # both PairPubs refused


def case_paired_band_cannot_be_rekeyed_by_a_stranger():
    h, phone = paired()
    h.disconnect()
    rng = Rng(99)
    thief = FakePhone(OTHER, rng)
    h.connect(thief)
    assert not thief.pair(h, check_open=False)
    assert not h.core.authenticated and h.core.rejected == 3 and h.phone is None
    h.disconnect()
    h.connect(phone)
    phone.auth(h)
    assert phone.authed, "the real phone's key still works"


def case_pairing_window_closes_after_a_minute():
    h, rng = unpaired()
    open_window(h)
    assert h.core.pairing_open
    h.run(59000)
    assert not h.core.pairing_open
    phone = FakePhone(KEY, rng)
    h.connect(phone)
    st = frames.decode_state(phone.state, None)
    assert not st.flags & frames.FLAG_PAIRING_OPEN
    assert not phone.pair(h, check_open=False)
    assert not h.core.paired


def _exchange():
    """A band in its window and a phone that sent its public key: (h, rng, phone, secret, pub, band pub)."""
    from hugproto import pairing, x25519

    h, rng = unpaired()
    open_window(h)
    phone = FakePhone(KEY, rng)
    h.connect(phone)
    secret = rng(32)
    pub = x25519.public_key(secret)
    phone.band_pub = pairing.PubHalves()
    phone.band_pub_frames = 0
    h.write(pairing.encode_pub(frames.PAIR_PUB, 0, pub))
    h.write(pairing.encode_pub(frames.PAIR_PUB, 1, pub))
    while phone.band_pub_frames < 2:
        h.run(10)
    band_pub = bytes(phone.band_pub.pub)
    phone.band_pub = None
    return h, rng, phone, secret, pub, band_pub


def case_pair_confirm_bound_to_another_connection_is_rejected():
    from hugproto import pairing, x25519

    h, rng, _phone, secret, pub, band_pub = _exchange()
    nonce = rng(8)
    old = b"\x00" * 8  # a confirm made for another connection's band nonce
    key = pairing.band_key(x25519.x25519(secret, band_pub), old, nonce, pub, band_pub)
    h.write(pairing.encode_confirm(key, old, nonce))
    assert not h.core.paired and h.core.rejected == 1 and h.core.pairing_open


def case_the_band_key_depends_on_both_public_keys_and_nonces():
    from hugproto import pairing, x25519

    h, rng, phone, secret, pub, band_pub = _exchange()
    st = frames.decode_state(phone.state, None)
    nonce = rng(8)
    shared = x25519.x25519(secret, band_pub)
    right = pairing.band_key(shared, st.nonce, nonce, pub, band_pub)
    for wrong in (
        pairing.band_key(shared, st.nonce, rng(8), pub, band_pub),
        pairing.band_key(shared, st.nonce, nonce, band_pub, pub),
        pairing.band_key(rng(32), st.nonce, nonce, pub, band_pub),
    ):
        assert wrong != right
        h.write(pairing.encode_confirm(wrong, st.nonce, nonce))
        assert not h.core.paired
    h.disconnect()  # two bad frames so far; a fresh connection pairs
    h.connect(phone)
    assert phone.pair(h) and h.core.paired


def case_one_pairing_per_window_and_the_loser_sees_just_paired():
    h, phone = paired()
    assert h.core.rejected == 0
    code = phone.code
    assert 2 <= code <= 5
    assert frames.decode_state(phone.state, phone.key).flags & frames.FLAG_JUST_PAIRED
    h.disconnect()
    thief = FakePhone(OTHER, Rng(42))
    h.connect(thief)
    st = frames.decode_state(thief.state, None)
    assert st.flags & frames.FLAG_JUST_PAIRED and not st.flags & frames.FLAG_PAIRING_OPEN
    assert not thief.pair(h, check_open=False), "a second pairing in the same window"
    assert thief.band_pub_frames == 0 and h.core.rejected == 3 and h.phone is None
    h.disconnect()
    h.run(61000)
    h.connect(phone)
    phone.auth(h)
    assert phone.authed and not phone.last_auth_ok.flags & frames.FLAG_JUST_PAIRED


def case_the_pairing_buzz_counts_the_code():
    h, rng = unpaired()
    open_window(h)
    runs = h.motor_runs
    phone = FakePhone(KEY, rng)
    h.connect(phone)
    assert phone.pair(h)
    h.run(4000)
    # the wave (three steps, each a motor level change) then ``code`` pulses
    assert h.motor_runs - runs == 1 + phone.code, (h.motor_runs - runs, phone.code)


def case_pairing_code_is_unloaded_after_pairing():
    import sys

    paired()
    assert "hugproto.x25519" not in sys.modules and "hugproto.pairing" not in sys.modules


def case_forged_play_never_buzzes_and_is_counted():
    h, phone = paired()
    runs = h.motor_runs
    st = frames.decode_state(phone.state, phone.key)
    forged = frames.Session(OTHER, st.nonce, b"12345678", frames.PHONE)
    h.write(forged.seal(frames.Play(patterns.HUG, 0, 255, 1, 1)))
    h.run(3000)
    assert h.motor_runs == runs and h.core.rejected == 1 and phone.felt == {}


def case_replayed_play_buzzes_once():
    h, phone = paired()
    frame = phone.session.seal(frames.Play(patterns.HUG, 0, 255, 1, 5))
    runs = h.motor_runs
    h.write(frame)
    h.run(3000)
    once = h.motor_runs - runs
    assert once > 0 and phone.felt == {5: 1}
    h.write(frame)
    h.run(3000)
    assert h.motor_runs - runs == once, "replay did not buzz again"
    assert phone.felt == {5: 1} and h.core.rejected == 1


def case_malformed_frames_are_counted_and_third_bad_frame_disconnects():
    h, phone = paired()
    good = phone.session.seal(frames.Play(patterns.HUG, 0, 255, 1, 5))
    runs = h.motor_runs
    h.write(good[:-1])  # truncated
    h.write(bytes((0x20 | frames.PLAY,)) + good[1:])  # protocol version 1 (the old one)
    assert h.core.rejected == 2 and h.phone is phone, "still connected after two"
    h.write(b"")
    assert h.core.rejected == 3 and h.disconnects == 1 and h.phone is None
    h.run(3000)
    assert h.motor_runs == runs


def case_out_of_range_play_is_rejected_not_played():
    h, phone = paired()
    runs = h.motor_runs
    # a Play the phone's own encoder would refuse: sealed by hand with pattern 77
    msg = frames.Play(patterns.HUG, 0, 255, 1, 5)
    msg.pattern = 77
    msg.check = lambda: None
    h.write(phone.session.seal(msg))
    h.run(2000)
    assert h.motor_runs == runs and h.core.rejected == 1


def case_unauthenticated_central_is_dropped_after_a_second():
    h, _ = paired()
    h.disconnect()
    idle = FakePhone(OTHER, Rng(3))
    h.connect(idle)
    h.run(900)
    assert h.phone is idle
    h.run(200)
    assert h.phone is None and h.disconnects == 1 and h.core.auth_timeouts == 1


ADDR_A = b"\x01\x02\x03\x04\x05\x06"
ADDR_B = b"\x0a\x0b\x0c\x0d\x0e\x0f"


def case_a_phone_too_slow_once_gets_a_longer_window_next_time():
    h, phone = paired()
    h.disconnect()
    h.connect(phone, ADDR_A)
    h.run(1100)  # its Auth did not come in the first second (a slow phone, a loaded machine)
    assert h.phone is None
    h.connect(FakePhone(OTHER, Rng(4)), ADDR_B)  # a stranger in between gets the short window
    h.run(1100)
    assert h.phone is None
    h.connect(phone, ADDR_A)
    h.run(1700)
    assert h.phone is phone, "the second chance is longer"
    phone.auth(h)
    assert h.core.authenticated, "the slow owner gets in"


def case_the_owners_phone_always_gets_the_long_window_strangers_the_learnt_one():
    h, phone = paired()
    h.disconnect()
    h.connect(phone, ADDR_A)
    phone.auth(h)  # the owner's phone authenticates from ADDR_A: the band remembers it
    assert h.core.authenticated
    for _ in range(2):  # quick Auths: the learnt window is 1 s
        h.disconnect()
        h.connect(phone, ADDR_A)
        phone.auth(h)
    h.disconnect()
    for _ in range(3):  # the owner's phone, slowed by its own load, every time
        h.connect(phone, ADDR_A)
        h.run(3900)
        assert h.phone is phone, "4 s for the owner's address"
        phone.auth(h)
        assert h.core.authenticated
        h.disconnect()
    for _ in range(2):  # quick Auths again: the learnt window comes back down to 1 s
        h.connect(phone, ADDR_A)
        phone.auth(h)
        h.disconnect()
    held = []
    for _ in range(3):  # a stranger's address: the learnt 1 s, and one second chance per 30 s
        h.connect(FakePhone(OTHER, Rng(5)), ADDR_B)
        t0 = h.now
        while h.phone is not None and h.now - t0 < 5000:
            h.run(100)
        held.append((h.now - t0) // 1000)
    assert held == [1, 2, 1], held


def case_a_phone_slower_still_gets_a_longer_chance_later():
    h, phone = paired()
    h.disconnect()
    held = []
    for _ in range(3):  # a phone that needs 3.5 s (the learnt window lost in a reboot, say)
        h.run(30000)  # it tries again a while later
        h.connect(phone, ADDR_A)
        t0 = h.now
        while h.phone is phone and h.now - t0 < 3500:
            h.run(100)
        held.append((h.now - t0) // 1000)
    assert held == [1, 2, 3], held
    phone.auth(h)
    assert h.core.authenticated, "never locked out"


def case_strangers_get_few_second_chances():
    h, _ = paired()
    h.disconnect()
    idle = FakePhone(OTHER, Rng(3))
    held = []
    for addr in (ADDR_A, ADDR_B) * 4:  # two addresses in turn: one second chance in 30 s
        h.connect(idle, addr)
        t0 = h.now
        while h.phone is idle:
            h.run(100)
        held.append((h.now - t0) // 1000)
    assert held == [1, 1, 2, 1, 1, 1, 1, 1], held
    for _ in range(40):  # later the other one has its second chance, and then none again
        h.connect(idle, ADDR_B)
        t0 = h.now
        while h.phone is idle:
            h.run(100)
        held.append((h.now - t0) // 1000)
    assert held[8:].count(2) == 1 and held[8:].count(1) == 39, held


def case_the_window_follows_a_slow_owner_phone():
    h, phone = paired()
    h.disconnect()
    h.connect(phone, ADDR_A)
    h.run(600)  # slow, but within the window
    phone.auth(h)
    assert h.core.authenticated
    h.disconnect()
    h.connect(phone, ADDR_A)
    h.run(2200)  # slower still: four times the last delay is allowed
    assert h.phone is phone
    phone.auth(h)
    assert h.core.authenticated
    h.disconnect()
    idle = FakePhone(OTHER, Rng(3))
    h.connect(idle, ADDR_B)
    h.run(4100)
    assert h.phone is None, "never more than four seconds"


def case_a_wrong_auth_drops_the_link_and_pauses_advertising():
    h, phone = paired()
    h.disconnect()
    rng = Rng(11)
    notifies = h.notifies

    def guess_and_pause():
        h.connect(FakePhone(OTHER, rng))
        stranger_auth(h, OTHER, rng)
        assert h.phone is None, "one guess per connection"
        before = h.adverts
        t0 = h.now
        while h.adverts == before:
            h.run(5)
        return h.now - t0

    pauses = [guess_and_pause() for _ in range(5)]
    assert h.core.auth_failures == 5 and h.notifies == notifies
    assert pauses == [125, 250, 500, 500, 500], pauses
    h.connect(phone)
    phone.auth(h)
    assert h.core.authenticated, "the owner is not locked out"
    h.disconnect()
    assert guess_and_pause() == 125, "a good Auth ends the longer pauses"


def case_a_write_from_a_link_the_band_never_saw_connect_drops_it():
    h, _ = paired()
    h.disconnect()
    h.core.on_command(42, b"\x10" + bytes(12), h.now)  # its connect IRQ was lost
    assert h.core.pop_action() == (logic.A_DISCONNECT, 42, 0)
    assert h.core.link is None


def case_with_no_link_the_band_keeps_saying_it_advertises():
    h, _ = paired()
    h.disconnect()
    h.run(10)
    before = h.adverts
    h.run(10000)
    assert h.adverts - before >= 3, "advertising is restarted every few seconds"


def case_the_link_the_band_holds_is_named_for_the_shell_check():
    h, _ = paired()
    conn = h.phone.conn
    assert h.core.link == conn and not h.core.link_dropped
    h.core.on_disconnect(conn, h.now)  # the shell found the link gone on the stack
    assert h.core.link is None and not h.core.connected
    h.core.on_connect(7, h.now)
    for _ in range(3):
        h.core.on_command(7, b"\xff", h.now)
    assert h.core.link == 7 and h.core.link_dropped, "dropped, until the stack says it is gone"


def case_second_central_is_refused_while_connected():
    h, _ = paired()
    h.core.on_connect(99, h.now)
    a = h.core.pop_action()
    assert a == (logic.A_DISCONNECT, 99, 0), a
    assert h.core.authenticated, "the first connection is untouched"


def case_presses_flow_only_after_auth():
    h, phone = paired()
    h.disconnect()
    h.connect(phone)
    h.taps(2)
    assert phone.received == 0 and len(h.core.outbox) == 1
    phone.auth(h)
    assert phone.received == 1 and phone.last_press.value == 2
    assert len(h.core.outbox) == 0, "acknowledged"


def case_play_buzzes_then_felt_after_the_pattern():
    h, phone = paired()
    buf = bytearray(patterns.BUFFER_SIZE)
    n = patterns.render(patterns.HUG, 2, 200, 1, buf)
    ms = patterns.duration_ms(buf, n)
    phone.send(h, frames.Play(patterns.HUG, 2, 200, 1, 42))
    h.run(20)
    assert h.motor > 0, "buzzing"
    h.run(ms - 100)
    assert phone.felt == {}, "Felt only once the pattern has played"
    h.run(200)
    assert phone.felt == {42: 1} and h.motor == 0


def case_resent_play_token_buzzes_once_and_is_felt_again():
    h, phone = paired()
    runs = h.motor_runs
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 77))
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 77))  # resent while still playing: ignored
    h.run(3000)
    one_hug = h.motor_runs - runs
    assert one_hug > 0
    assert phone.felt == {77: 1}
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 77))  # resent after it played: Felt again, no buzz
    h.run(3000)
    assert h.motor_runs == runs + one_hug
    assert phone.felt == {77: 2}
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 78))
    h.run(3000)
    assert h.motor_runs == runs + 2 * one_hug


def paired_keeping_played(played):
    """A paired band (with ``played`` as its played-tokens blob) buzzing Play 77 for 20 ms."""
    rng = Rng(7)
    h = Harness(boards.load(), MemBlob(), MemBlob(), rng, played=played)
    open_window(h)
    phone = FakePhone(KEY, rng)
    h.connect(phone)
    assert phone.pair(h)
    h.run(2500)
    runs = h.motor_runs
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 77))
    h.run(20)
    return h, phone, runs


def played_then_felt_lost_then_reboot(played):
    h, phone, runs = paired_keeping_played(played)
    h.disconnect()  # the link drops while it buzzes: its Felt waits for the next connection
    h.run(3000)
    one_hug = h.motor_runs - runs
    assert one_hug > 0 and phone.felt == {}
    h.now += 50000
    h.boot()  # ... but the band reboots first
    h.connect(phone)
    phone.auth(h)
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 77))  # the phone resends: no Felt yet
    h.run(3000)
    return h, phone, runs, one_hug


def case_a_play_felt_before_a_reboot_does_not_buzz_again_when_resent():
    h, phone, runs, one_hug = played_then_felt_lost_then_reboot(MemBlob())
    assert h.motor_runs == runs + one_hug, "played once, across the reboot"
    assert phone.felt == {77: 1}, "and the phone hears it was felt"
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 78))
    h.run(3000)
    assert h.motor_runs == runs + 2 * one_hug and phone.felt == {77: 1, 78: 1}


def case_a_reboot_in_the_middle_of_a_play_does_not_play_it_again():
    h, phone, runs = paired_keeping_played(MemBlob())
    assert h.motor > 0, "buzzing"
    h.disconnect()
    h.boot()  # the battery comes loose halfway through the hug
    h.motor = 0
    h.connect(phone)
    phone.auth(h)
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 77))
    h.run(3000)
    assert h.motor_runs == runs + 1, "the wearer felt it start: it does not start over"
    assert phone.felt == {77: 1}


def case_a_play_is_kept_in_flash_only_behind_the_motor_that_starts_it():
    played = MemBlob()
    h, phone, runs = paired_keeping_played(played)
    h.run(3000)
    one_hug = h.motor_runs - runs
    kept = played.data
    assert one_hug > 0 and phone.felt == {77: 1} and kept is not None
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 78))
    # the poll that starts 78 queues its motor, then the keeping of 78; the power goes before the shell runs
    started = []
    while not started and h.now < 100000:
        h.now += 10
        h.core.poll(h.now)
        a = h.core.pop_action()
        while a is not None:
            started.append(a[0])
            a = h.core.pop_action()
        if logic.A_PLAYING not in started:
            started = []
    assert started, "78 started"
    assert started.index(logic.A_MOTOR) < started.index(logic.A_PLAYING), started
    assert played.data == kept, "nothing kept before the motor ran"
    h.disconnect()
    h.boot()  # the motor never ran: 78 was not felt, and plays when resent
    h.connect(phone)
    phone.auth(h)
    phone.send(h, frames.Play(patterns.HUG, 1, 200, 1, 78))
    h.run(3000)
    assert h.motor_runs == runs + 2 * one_hug and phone.felt == {77: 1, 78: 1}


def case_without_the_played_blob_a_reboot_forgets_what_played():
    h, phone, runs, one_hug = played_then_felt_lost_then_reboot(None)
    assert h.motor_runs == runs + 2 * one_hug and phone.felt == {77: 1}


def case_pairing_a_new_phone_forgets_the_played_tokens():
    played = MemBlob()
    h, _phone, runs, one_hug = played_then_felt_lost_then_reboot(played)
    assert played.data is not None and len(played.data) == 3
    h.disconnect()
    open_window(h)
    rng = Rng(11)
    other = FakePhone(OTHER, rng)
    h.connect(other)
    assert other.pair(h)
    assert played.data is None, "the new phone numbers its plays afresh"
    h.run(2500)
    runs = h.motor_runs
    other.send(h, frames.Play(patterns.HUG, 1, 200, 1, 77))
    h.run(3000)
    assert h.motor_runs == runs + one_hug and other.felt == {77: 1}


def case_ack_removes_from_the_persisted_outbox():
    h, phone = paired()
    phone.auto_ack = False
    h.taps(1)
    h.squeeze(1200)
    assert len(h.core.outbox) == 2 and phone.received == 2
    stored = Outbox()
    stored.from_bytes(h.storage.data)
    assert len(stored) == 2
    phone.send(h, frames.Ack(phone.last_press.seq))
    assert len(h.core.outbox) == 0
    stored.from_bytes(h.storage.data)
    assert len(stored) == 0


def case_unacked_presses_are_resent_after_a_while():
    h, phone = paired()
    phone.auto_ack = False
    h.taps(3)
    assert phone.received == 1
    h.run(9000)
    assert phone.received == 1
    h.run(2000)
    assert phone.received == 2 and len(phone.presses) == 1


def case_set_config_motor_max_caps_the_motor_and_persists():
    h, phone = paired()
    phone.send(h, frames.SetConfig(frames.CONFIG_MOTOR_MAX, 128))
    h.motor_peak = 0
    phone.send(h, frames.Play(patterns.BIG_HUG, 0, 255, 1, 1))
    h.run(3000)
    assert 0 < h.motor_peak <= 128 * 1023 // 255
    h.boot()
    assert h.core.player.max_duty == 128 * 1023 // 255


def case_press_ages_across_a_reboot_come_from_the_wall_clock():
    h, phone = paired()  # the phone set the clock right after AuthOk
    phone.auto_ack = False
    h.taps(1)
    h.run(5000)
    h.disconnect()
    h.now += 500000  # ticks after a reboot mean nothing
    h.boot()
    h.connect(phone)
    phone.auto_ack = True
    phone.auth(h)
    assert phone.last_press.age_s >= 505 and phone.last_press.age_s <= 507, phone.last_press.age_s


def case_press_age_after_a_reboot_without_clock_is_zero():
    h, phone = paired()
    phone.auto_ack = False
    h.taps(1)
    h.run(5000)
    h.disconnect()
    h.now += 500000
    h.boot()
    phone.set_time = False
    phone.auto_ack = True
    h.connect(phone)
    phone.auth(h)
    assert phone.received == 1, "waits briefly for SetTime"
    h.run(300)
    assert phone.received == 2 and phone.last_press.age_s == 0


def case_press_age_within_a_boot_is_exact():
    h, phone = paired()
    h.disconnect()
    h.taps(1)
    h.run(42000)
    phone.set_time = False
    h.connect(phone)
    phone.auth(h)
    h.run(300)
    assert phone.last_press.age_s == 42, phone.last_press.age_s


def case_identify_buzzes_the_pairing_code():
    h, phone = paired()
    runs = h.motor_runs
    phone.send(h, frames.Identify(2))
    h.run(3000)
    assert h.motor_runs - runs == 1 + phone.code, "the wave, then the code's pulses, as at pairing"
    assert phone.felt == {}, "no Felt for the band's own patterns"


def case_unpair_forgets_the_key_and_refuses_auth():
    h, phone = paired()
    phone.send(h, frames.Unpair())
    assert h.phone is None and not h.core.paired
    h.boot()
    assert not h.core.paired, "stays unpaired after a reboot"
    h.connect(phone)
    stranger_auth(h, phone.key, Rng(5))
    assert not h.core.authenticated and h.core.rejected == 1


def case_factory_reset_after_the_confirming_buzz():
    h, phone = paired()
    phone.auto_ack = False
    h.taps(1)
    h.disconnect()
    runs = h.motor_runs
    h.core.on_button(True, h.now)
    h.run(10050)
    assert h.motor > 0 and not h.factory_reset, "confirming buzz first"
    assert h.motor_runs > runs
    h.run(1500)
    h.core.on_button(False, h.now)
    assert h.factory_reset
    assert h.keystore.data is None
    stored = Outbox()
    assert stored.from_bytes(h.storage.data) and len(stored) == 0
    h.boot()
    assert not h.core.paired and len(h.core.outbox) == 0


def case_low_battery_warns_once_and_sets_the_flag():
    h, phone = paired()
    runs = h.motor_runs
    statuses = phone.statuses
    h.core.on_battery(3810, h.now)
    h.drain()
    h.run(2000)
    assert h.motor_runs > runs and phone.statuses == statuses + 1
    assert frames.decode_state(phone.state, phone.key).flags & frames.FLAG_LOW_BATTERY
    runs = h.motor_runs
    h.core.on_battery(3805, h.now)
    h.run(2000)
    assert h.motor_runs == runs, "warned once"


def case_corrupt_key_file_means_unpaired():
    h, _ = paired()
    h.keystore.data = h.keystore.data[:-1] + bytes((h.keystore.data[-1] ^ 1,))
    h.boot()
    assert not h.core.paired and h.core.storage_errors == 1


def case_storage_failure_does_not_lose_the_press_in_ram():
    h, phone = paired()
    h.storage.fail = True
    h.taps(1)
    assert h.core.storage_errors >= 1 and len(phone.presses) == 1


def case_unpaired_idle_band_goes_to_deep_sleep():
    h, _ = unpaired()
    t = h.now
    for _ in range(11 * 60):
        t += 1000
        h.now = t
        h.core.poll(t)
        h.drain()
    assert h.deep_sleep


def case_paired_band_never_deep_sleeps():
    h, _ = paired()
    h.disconnect()
    t = h.now
    for _ in range(30 * 60):
        t += 1000
        h.now = t
        h.core.poll(t)
        h.drain()
    assert not h.deep_sleep


def case_a_stalled_pairing_connection_is_dropped():
    from hugproto import pairing

    h, rng = unpaired()
    open_window(h)
    h.connect(FakePhone(KEY, rng))
    h.write(pairing.encode_pub(frames.PAIR_PUB, 0, bytes(range(32))))  # half a key, then nothing
    h.run(3900)
    assert h.phone is not None
    h.run(200)
    assert h.phone is None, "half a key buys no more than the pairing window's usual 4 s"
    sitter = FakePhone(KEY, rng)
    sitter.band_pub = pairing.PubHalves()
    h.connect(sitter)
    for half in (0, 1):
        h.write(pairing.encode_pub(frames.PAIR_PUB, half, bytes(range(1, 33))))
    h.run(9900)
    assert h.phone is sitter
    assert sitter.band_pub_frames == 2, "the band answered with its key"
    h.run(200)
    assert h.phone is None, "a whole key and no PairConfirm: dropped after 10 s"
    assert h.core.pairing_open, "the window stays open for the parent"
