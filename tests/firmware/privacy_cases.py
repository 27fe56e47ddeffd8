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


def _expect(h, key):
    """The token the band's owner (holder of ``key``) computes for the band's current address."""
    return adv.token(Hmac(adv.identity_key(key)), h.addresses[-1])


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
    assert adv.hug_token(h.advert) == _expect(h, frames.UNPAIRED_KEY)
    assert len(h.advert) <= adv.MAX_ADV and adv.local_name(h.advert) is None


def case_address_and_token_change_together_every_period():
    h, rng = _band()
    key = _pair(h, rng).key
    h.disconnect()
    h.run(100)
    seen = [(h.addresses[-1], adv.hug_token(h.advert))]
    assert seen[0][1] == _expect(h, key)  # the owner recognises it
    for _ in range(4):
        _wait(h, ROTATE_S * 1000)
        seen.append((h.addresses[-1], adv.hug_token(h.advert)))
        assert seen[-1][1] == _expect(h, key)
    assert len({a for a, _ in seen}) == 5 and len({t for _, t in seen}) == 5


def case_pairing_moves_to_a_new_address_and_the_new_keys_token():
    h, rng = _band()
    before = h.addresses[-1]
    key = _pair(h, rng).key
    h.disconnect()
    h.run(100)
    assert h.addresses[-1] != before
    assert adv.hug_token(h.advert) == _expect(h, key)
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
    assert len(h.addresses) == n + 1 and adv.hug_token(h.advert) == _expect(h, frames.UNPAIRED_KEY)
