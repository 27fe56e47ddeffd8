"""Linking phones by short code (SPAKE2 over the broker), circles of three, wrong and expired codes; on
the cluster the phones of a circle sit on different nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from relaykit import FakeClock, Phone, TestBroker, run

from hugapp.core import relaystore as rs
from hugapp.core.linking import (
    CODE_ALPHABET,
    HUB,
    CodeElsewhere,
    CodeExpired,
    CodeInvalid,
    CodeNotFound,
    create_link_code,
    join_with_code,
    normalize_code,
    qr_matrix,
    qr_png,
    qr_terminal,
    qr_text,
)

BROKER_KINDS = ("embedded", "mosquitto", "cluster")  # on the cluster: the two families on two nodes


def test_codes_are_short_unambiguous_and_forgiving() -> None:
    offer_code = "K7PM-4Q2X"
    assert normalize_code(" k7pm 4q2x ") == "K7PM4Q2X"
    assert normalize_code("hugbutton:link:K7PM-4Q2X") == "K7PM4Q2X"
    assert not set("01OIL") & set(CODE_ALPHABET)
    for bad in ("K7PM-4Q2", "K7PM-4Q2O", "K7PM-4Q21", ""):
        with pytest.raises(CodeInvalid):
            normalize_code(bad)
    assert qr_text(offer_code) == "hugbutton:link:K7PM-4Q2X"
    assert qr_png(offer_code).startswith(b"\x89PNG\r\n\x1a\n")
    matrix = qr_matrix(offer_code)
    assert len(matrix) == len(matrix[0]) >= 21
    assert any(any(row) for row in matrix)


def test_a_hub_code_says_where_it_belongs_and_draws_in_a_terminal() -> None:
    hub_qr = qr_text("k7pm4q2x", HUB)
    assert hub_qr == "hugbutton:hub:K7PM-4Q2X"
    assert normalize_code(hub_qr, HUB) == "K7PM4Q2X"
    with pytest.raises(CodeElsewhere, match="Bands -> At school"):
        normalize_code(hub_qr)  # a hub's QR scanned to link phones
    with pytest.raises(CodeElsewhere, match="Link -> Join"):
        normalize_code(qr_text("K7PM4Q2X"), HUB)  # a phone's link QR scanned at the classroom door
    # the terminal drawing is the QR's modules, light ones drawn (two rows a line), in a 2-module border
    matrix = qr_matrix("K7PM4Q2X", HUB)
    size = len(matrix) + 4
    blank = [False] * size
    framed = [blank, blank, *([False, False, *row, False, False] for row in matrix), blank, blank]
    lines = qr_terminal("K7PM4Q2X", HUB).splitlines()
    assert len(lines) == (size + 1) // 2
    light = [row for line in lines for row in ([c in "█▀" for c in line], [c in "█▄" for c in line])]
    assert light[:size] == [[not dark for dark in row] for row in framed]


def test_link_two_phones_then_a_third_joins_the_same_circle(broker: TestBroker, tmp_path: Path) -> None:
    async def main() -> None:
        async with broker:
            mum, kid, gran = (
                Phone(tmp_path, "Mum Alice"),
                Phone(tmp_path, "Kid Bobby"),
                Phone(tmp_path, "Gran Rosie"),
            )
            offer = await create_link_code(mum.store, mum.me, broker.url, circle_name="home")
            joined = await join_with_code(offer.code.lower(), kid.store, kid.me, broker.url_for(1))
            offered = await offer.wait()
            assert offered.new_circle
            assert joined.new_circle
            assert offered.link_id == joined.link_id
            link = joined.link_id
            assert offered.member.member_id == kid.member_id
            assert joined.member.member_id == mum.member_id
            mum_link, kid_link = rs.link(mum.store, link), rs.link(kid.store, link)
            assert mum_link is not None
            assert kid_link is not None
            assert mum_link.key == kid_link.key
            # both relays run; the kid learns about the grandparent through a sealed member-added message
            ra = await mum.start(broker.url)
            await kid.start(broker.url_for(1))
            offer2 = await create_link_code(mum.store, mum.me, broker.url, link_id=link, relay=ra)
            joined2 = await join_with_code(offer2.code, gran.store, gran.me, broker.url_for(2))
            await offer2.wait()
            assert joined2.link_id == link
            assert not joined2.new_circle
            await kid.changed.until(lambda: rs.member(kid.store, link, gran.member_id) is not None)
            await gran.start(broker.url_for(2))
            everyone = {mum.member_id, kid.member_id, gran.member_id}
            for phone in (mum, kid, gran):
                ms = rs.members(phone.store, link)
                assert {m.member_id for m in ms} == everyone
                assert sorted(m.signature for m in ms) == [1, 2, 3]  # distinct haptic signatures
            assert gran.relay is not None
            hug = await gran.relay.send(link, {"gesture": "tap", "taps": 2})
            await mum.changed.until(lambda: any(m.msg_id == hug for m in mum.received))
            await kid.changed.until(lambda: any(m.msg_id == hug for m in kid.received))
            await gran.changed.until(
                lambda: {by for mid, by in gran.acked if mid == hug} == {mum.member_id, kid.member_id}
            )
            # removing a member: the others drop her and refuse what she seals afterwards
            await ra.remove_member(link, gran.member_id)
            await kid.changed.until(lambda: rs.member(kid.store, link, gran.member_id) is None)
            assert rs.member(mum.store, link, gran.member_id) is None
            before = len(kid.received)
            await gran.relay.send(link, {"gesture": "tap"}, to=kid.member_id)
            await kid.changed.until(lambda: "forged" in kid.rejected)
            assert len(kid.received) == before
            for phone in (mum, kid, gran):
                await phone.stop()

    run(main())


def test_five_families_link_at_the_same_time_each_into_its_own_circle(
    broker: TestBroker, tmp_path: Path
) -> None:
    async def main() -> None:
        async with broker:
            parents = [Phone(tmp_path, f"Parent P{i}") for i in range(5)]
            kids = [Phone(tmp_path, f"Kid K{i}") for i in range(5)]
            offers = await asyncio.gather(
                *(
                    create_link_code(p.store, p.me, broker.url_for(i), circle_name=f"family {i}")
                    for i, p in enumerate(parents)
                )
            )
            joined = await asyncio.gather(
                *(
                    join_with_code(o.code, k.store, k.me, broker.url_for(i + 1))
                    for i, (o, k) in enumerate(zip(offers, kids, strict=True))
                )
            )
            offered = await asyncio.gather(*(o.wait() for o in offers))
            assert len({j.link_id for j in joined}) == 5, "five circles, not one shared"
            for i in range(5):
                assert offered[i].link_id == joined[i].link_id
                assert offered[i].member.member_id == kids[i].member_id
                assert joined[i].member.member_id == parents[i].member_id
                members = {m.member_id for m in rs.members(kids[i].store, joined[i].link_id)}
                assert members == {parents[i].member_id, kids[i].member_id}

    run(main(), timeout=60)


def test_a_wrong_code_reaches_no_offer_and_the_right_one_still_links(
    broker: TestBroker, tmp_path: Path
) -> None:
    """A mistyped code names another rendezvous (scrypt of the whole code): no offer hears it, so it
    cannot use the real offer up, and the right code links afterwards."""

    async def main() -> None:
        async with broker:
            mum, kid = Phone(tmp_path, "Mum Alice"), Phone(tmp_path, "Kid Bobby")
            offer = await create_link_code(mum.store, mum.me, broker.url)
            code = normalize_code(offer.code)
            wrong = code[:4] + "".join(
                CODE_ALPHABET[(CODE_ALPHABET.index(c) + 1) % len(CODE_ALPHABET)] for c in code[4:]
            )
            with pytest.raises(CodeNotFound):
                await join_with_code(wrong, kid.store, kid.me, broker.url_for(1), timeout=1.0)
            assert rs.links(kid.store) == []
            joined = await join_with_code(code, kid.store, kid.me, broker.url_for(1))
            offered = await offer.wait()
            assert offered.link_id == joined.link_id
            assert {m.member_id for m in rs.members(mum.store, offered.link_id)} == {
                mum.member_id,
                kid.member_id,
            }

    run(main())


def test_an_expired_code_is_refused(broker: TestBroker, tmp_path: Path) -> None:
    clock = FakeClock()

    async def main() -> None:
        async with broker:
            mum, kid = Phone(tmp_path, "Mum Alice", clock), Phone(tmp_path, "Kid Bobby", clock)
            offer = await create_link_code(mum.store, mum.me, broker.url, clock=clock)
            clock.advance(181)
            with pytest.raises(CodeExpired):
                await offer.wait()
            with pytest.raises(CodeNotFound):  # the offer has stopped listening
                await join_with_code(offer.code, kid.store, kid.me, broker.url_for(1), timeout=1.0)
            assert rs.links(mum.store) == []
            assert rs.links(kid.store) == []

    run(main())
