"""What a band advertises (hugband.logic with hugproto.adv): a fresh random address every
``address_rotate_s`` with a token only its owners recognise, no name. Runs under CPython and real
MicroPython; the Harness plays the shell (it answers A_ADDRESS with a new random address)."""

from bandday import FakePhone, Harness, Rng

from hugband import board as boards
from hugband.store import MemBlob
from hugproto import adv, frames
from hugproto.mac import Hmac

MP_LIBS = ["tests/firmware/bandday.py"]

KEY = b"0123456789abcdef"  # the phone's placeholder until pairing agrees the band key
ROTATE_S = 60


def _band(seed=11):
    board = boards.load()
    board["address_rotate_s"] = ROTATE_S
    rng = Rng(seed)
    return Harness(board, MemBlob(), MemBlob(), rng), rng


def _waiting(h, key):
    """What the band's owner (holder of ``key``) reads in the band's last advert: -1 not its band,
    else whether a press waits on it."""
    return adv.recognise(Hmac(adv.identity_key(key)), h.addresses[-1], adv.hug_data(h.advert))


def _mine(h, key):
    return _waiting(h, key) >= 0


def _pair(h, rng):
    h.core.on_button(True, h.now)
    h.run(5100)
    h.core.on_button(False, h.now)
    h.run(1000)
    phone = FakePhone(KEY, rng)
    h.connect(phone)
    assert phone.pair(h)  # the session is open under the agreed key (phone.key)
    assert phone.authed
    h.run(1500)
    return phone


def _wait(h, ms):
    step = 1000
    while ms > 0:
        h.run(step if ms > step else ms)
        ms -= step


def case_the_first_advert_comes_from_a_fresh_address_with_its_token():
    h, _ = _band()
    assert len(h.addresses) == 1 and h.adverts >= 1
    assert _mine(h, frames.UNPAIRED_KEY)
    assert len(h.advert) <= adv.MAX_ADV and adv.local_name(h.advert) is None


def case_address_and_token_change_together_every_period():
    h, rng = _band()
    key = _pair(h, rng).key
    h.disconnect()
    h.run(100)
    seen = [(h.addresses[-1], adv.hug_token(h.advert))]
    assert _mine(h, key)  # the owner recognises it
    for _ in range(4):
        _wait(h, ROTATE_S * 1000)
        seen.append((h.addresses[-1], adv.hug_token(h.advert)))
        assert _mine(h, key)
    assert len({a for a, _ in seen}) == 5 and len({t for _, t in seen}) == 5


def case_pairing_moves_to_a_new_address_and_the_new_keys_token():
    h, rng = _band()
    before = h.addresses[-1]
    key = _pair(h, rng).key
    h.disconnect()
    h.run(100)
    assert h.addresses[-1] != before
    assert _mine(h, key)
    assert adv.hug_state(h.advert) == frames.FLAG_PAIRED


def case_no_new_address_while_connected_or_in_the_pairing_window():
    h, rng = _band()
    phone = _pair(h, rng)
    n = len(h.addresses)
    _wait(h, 2 * ROTATE_S * 1000)  # connected all along
    assert len(h.addresses) == n
    h.disconnect()
    h.run(100)
    assert len(h.addresses) == n + 1  # it was due: at once
    h.core.on_button(True, h.now)
    h.run(5100)
    h.core.on_button(False, h.now)
    n = len(h.addresses)
    assert adv.hug_state(h.advert) & frames.FLAG_PAIRING_OPEN
    _wait(h, ROTATE_S * 1000 - 6000)
    assert len(h.addresses) == n  # the phone that saw "ready to pair" finds it where it was
    del phone


def case_low_battery_is_not_advertised():
    h, rng = _band()
    _pair(h, rng)
    h.disconnect()
    h.core.on_battery(3300, h.now)
    h.run(100)
    assert h.core.flags & frames.FLAG_LOW_BATTERY
    assert adv.hug_state(h.advert) == frames.FLAG_PAIRED


def case_a_full_action_queue_delays_the_new_address_never_loses_it():
    h, _ = _band()
    n = len(h.addresses)
    h.run(ROTATE_S * 1000 - 100)
    core = h.core
    while core._qn < 32:  # the shell fell behind: the queue is full
        core._push(0, 0, 0)
    h.now += 200  # the new address is due
    core.poll(h.now)
    assert core._qn == 32 and len(h.addresses) == n
    while core.pop_action() is not None:
        pass
    h.run(100)
    assert len(h.addresses) == n + 1 and _mine(h, frames.UNPAIRED_KEY)


def _adverts(h, ms):
    """(time, address, roll, token) of every advert the band pushes in the next ``ms``."""
    out = []
    end = h.now + ms
    while h.now < end:
        n = h.adverts
        h.run(50)
        if h.adverts != n:
            out.append((h.now, bytes(h.addresses[-1]), adv.hug_roll(h.advert), adv.hug_token(h.advert)))
    return out


def _unlinked(press, seed=5):
    h, rng = _band(seed)
    key = _pair(h, rng).key
    h.disconnect()
    h.run(3000)
    if press:
        h.taps(1)
    else:
        h.run(230)
    h.run(1500)  # past the multi-tap window: the press is kept, or nothing happened
    h.run(3000)  # and the next advert on the beat carries it
    return h, key


def case_a_press_waiting_shows_to_the_owner_only():
    """With and without a press waiting, a scanner sees the same adverts at the same times from the
    same addresses with the same rolls; only the tokens differ, and only the owner can read them."""
    waiting, key = _unlinked(True)
    idle, _ = _unlinked(False)
    assert len(waiting.core.outbox) == 1 and len(idle.core.outbox) == 0
    assert _waiting(waiting, key) == 1 and _waiting(idle, key) == 0
    assert _waiting(waiting, KEY + b"!") == -1 and _waiting(idle, KEY + b"!") == -1  # a stranger
    seen_w, seen_i = _adverts(waiting, 30000), _adverts(idle, 30000)
    assert len(seen_w) >= 9
    assert [a[:3] for a in seen_w] == [a[:3] for a in seen_i], "same times, addresses and rolls"
    assert all(seen_w[k][3] != seen_i[k][3] for k in range(len(seen_w))), "the tokens are all that differ"
    assert len({a[3] for a in seen_w}) == len(seen_w), "and they change with every advert anyway"


def case_the_roll_steps_on_the_beat_and_never_comes_round_at_one_address():
    h, rng = _band()
    h.core._rotate_ms = 3600 * 1000  # no scheduled new address in this test: only the roll's
    _pair(h, rng)
    h.disconnect()
    seen = _adverts(h, 500 * 1000)
    by_address = {}
    for _t, address, roll, _tok in seen:
        by_address.setdefault(address, []).append(roll)
    assert len(by_address) >= 2, "a new address before the roll came round"
    tokens = {}
    for _t, address, roll, tok in seen:
        assert tokens.setdefault((address, roll), tok) == tok, "one token per roll at an address"
    for rolls in by_address.values():
        assert all((rolls[k + 1] - rolls[k]) % adv.ROLLS in (0, 1) for k in range(len(rolls) - 1))
        steps = sum(1 for k in range(len(rolls) - 1) if rolls[k + 1] != rolls[k])
        assert steps < adv.ROLLS, "a new address before the roll came round"
