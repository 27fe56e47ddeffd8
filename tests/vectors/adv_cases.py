"""Advertising golden vectors (tests/vectors/adv.json): identity key, tokens and whole payloads.
MicroPython-compatible: the same cases run under CPython and real MicroPython."""

from cases import load_json

from hugproto import adv
from hugproto.errors import ProtocolError
from hugproto.mac import Hmac

V = load_json("tests/vectors/adv.json")
KEY = bytes.fromhex(V["band_key"])


def _error_name(fn, *args):
    try:
        fn(*args)
    except ProtocolError as exc:
        return type(exc).__name__
    return None


def case_identity_key_and_tokens():
    ident = adv.identity_key(KEY)
    assert ident.hex() == V["identity_key"]
    h = Hmac(ident)
    tokens = set()
    for v in V["adverts"]:
        address = bytes.fromhex(v["address"].replace(":", ""))
        assert adv.token(h, address, v["roll"], v["waiting"]).hex() == v["token"]
        assert adv.token(h, address, v["roll"], 1 - v["waiting"]).hex() != v["token"]
        tokens.add(v["token"])
    assert len(tokens) == len(V["adverts"])  # every address its own token


def case_advertising_payloads():
    for v in V["adverts"]:
        token = bytes.fromhex(v["token"])
        data = adv.encode_advertising(v["state"], token, v["roll"])
        assert data.hex() == v["hex"]
        assert len(data) <= adv.MAX_ADV
        assert adv.hug_state(data) == v["state"]
        assert adv.hug_roll(data) == v["roll"]
        assert adv.hug_token(data) == token
        address = bytes.fromhex(v["address"].replace(":", ""))
        assert adv.recognise(Hmac(adv.identity_key(KEY)), address, adv.hug_data(data)) == v["waiting"]
        assert adv.recognise(Hmac(adv.identity_key(KEY + b"!")), address, adv.hug_data(data)) == -1
        assert adv.local_name(data) is None  # no name on the air


def case_only_pairing_state_is_advertised():
    token = bytes(adv.TOKEN_LEN)
    assert adv.hug_state(adv.encode_advertising(0x0F, token)) == adv.STATE_MASK


def case_bad_input_is_refused():
    assert _error_name(adv.encode_advertising, 1, b"1234") == "Malformed"
    assert _error_name(adv.encode_advertising, 256, bytes(adv.TOKEN_LEN)) == "Malformed"
    assert _error_name(adv.token, Hmac(KEY), b"12345") == "Malformed"
    assert _error_name(adv.token, Hmac(KEY), b"123456", adv.ROLLS) == "Malformed"
    assert _error_name(adv.encode_advertising, 1, bytes(adv.TOKEN_LEN), -1) == "Malformed"
    assert _error_name(adv.fields, bytes((5, 9, 65))) == "Incomplete"
    assert _error_name(adv.fields, bytes(32)) == "Malformed"


def case_other_payloads_are_not_hug_bands():
    data = bytes.fromhex(V["adverts"][0]["hex"])
    assert adv.hug_token(data[:21]) is None  # the service alone: no manufacturer data
    assert adv.hug_state(bytes((2, 1, 6))) == -1
    short = data[:-1]  # the manufacturer field cut short is an overrun
    assert _error_name(adv.hug_token, short) == "Incomplete"
