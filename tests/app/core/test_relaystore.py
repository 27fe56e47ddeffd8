"""Relay data in the store (hugapp.core.relaystore): the one signature assignment and its bound."""

from __future__ import annotations

import pytest

from hugapp.core import relaystore as rs
from hugapp.core.store import StoreError
from hugproto.patterns import NUM_SIGNATURES


def test_members_get_distinct_signatures_while_any_are_left() -> None:
    taken: list[int] = []
    for _ in range(NUM_SIGNATURES - 1):  # seven members, seven distinct signatures
        taken.append(rs.free_signature(taken))
    assert sorted(taken) == list(range(1, NUM_SIGNATURES))


def test_more_members_than_signatures_still_get_valid_ones() -> None:
    taken = list(range(1, NUM_SIGNATURES))  # all seven in use: the next shares one
    for _ in range(5):
        taken.append(rs.free_signature(taken))
        assert 1 <= taken[-1] < NUM_SIGNATURES


def test_a_member_record_with_a_signature_beyond_the_protocol_is_refused() -> None:
    good = {"id": "a" * 32, "name": "Mia", "mailbox": "b" * 32, "presence_key": "00" * 32}
    assert rs.Member.from_wire("l" * 32, {**good, "signature": NUM_SIGNATURES - 1}).signature == 7
    for bad in (0, NUM_SIGNATURES):
        with pytest.raises(StoreError):
            rs.Member.from_wire("l" * 32, {**good, "signature": bad})
