"""Press outbox (hugband.outbox) and blob storage: runs under CPython and real MicroPython."""

from cases import raises

from hugband.outbox import Outbox, seq_after
from hugband.store import FileBlob, MemBlob


def seqs(ob):
    return [ob.seq_at(i) for i in range(len(ob))]


def case_presses_get_rising_seq_and_ack_removes_up_to():
    ob = Outbox()
    assert [ob.add(1, 2, 100, 1000), ob.add(2, 200, 900, 2000), ob.add(1, 1, 80, 3000)] == [1, 2, 3]
    assert ob.ack(2) == 2
    assert seqs(ob) == [3]
    assert ob.ack(2) == 0, "a repeated ack changes nothing"
    assert ob.ack(3) == 1 and len(ob) == 0


def case_pending_items_and_ages_within_a_boot():
    ob = Outbox()
    ob.add(1, 3, 400, 1000)
    ob.add(2, 180, 1500, 31000)
    got = list(ob.pending(61000))
    assert got == [(1, 1, 3, 400, 60), (2, 2, 180, 1500, 30)], got
    # the ticks counter wrapping between press and resend does not matter
    ob2 = Outbox()
    ob2.add(1, 1, 80, (1 << 30) - 2000)
    assert ob2.get(0, 8000)[4] == 10


def case_bogus_ack_ahead_of_anything_issued_is_ignored():
    ob = Outbox()
    ob.add(1, 1, 80, 0)
    ob.add(1, 1, 80, 0)
    assert ob.ack(5) == -1
    assert seqs(ob) == [1, 2]


def case_seq_wraps_and_acks_use_serial_arithmetic():
    ob = Outbox()
    ob.next_seq = 65534
    got = [ob.add(1, 1, 80, t) for t in range(4)]
    assert got == [65534, 65535, 0, 1]
    assert seq_after(0, 65535) and seq_after(1, 65534) and not seq_after(65535, 1)
    assert ob.ack(65535) == 2
    assert seqs(ob) == [0, 1]
    assert ob.ack(60000) == 0, "an old ack from before the wrap removes nothing"
    assert ob.ack(1) == 2 and len(ob) == 0
    assert ob.next_seq == 2


def case_full_outbox_drops_the_oldest_and_counts():
    ob = Outbox(capacity=4)
    for i in range(6):
        ob.add(1, 1 + i % 5, 80, i)
    assert len(ob) == 4 and ob.dropped == 2
    assert seqs(ob) == [3, 4, 5, 6]
    assert ob.get(0, 10)[2] == 3, "values follow their records"


def case_persistence_round_trip():
    ob = Outbox()
    ob.next_seq = 65535
    ob.add(1, 4, 300, 5000, epoch_s=700000000)
    ob.add(2, 255, 3100, 6000, epoch_s=700000001)
    ob.add(1, 1, 90, 7000)  # pressed before the clock was set
    ob.ack(65535)
    ob.dropped = 3
    data = ob.to_bytes()
    back = Outbox()
    assert back.from_bytes(data, fallback_seq=9) is True
    assert seqs(back) == [0, 1] and back.next_seq == 2 and back.dropped == 3 and back.errors == 0
    # after a reboot ticks mean nothing: the age comes from the wall clock if both are known, else 0
    assert back.get(0, 123, epoch_now=700000061) == (0, 2, 255, 3100, 60)
    assert back.get(1, 123, epoch_now=700000061) == (1, 1, 1, 90, 0)
    assert back.get(0, 123)[4] == 0, "clock not set since the reboot"
    # the next press continues the numbering
    assert back.add(1, 2, 80, 200) == 2
    assert back.to_bytes() != data


def case_corrupt_or_foreign_files_load_empty_and_count():
    ob = Outbox()
    for i in range(3):
        ob.add(1, 1, 80, i)
    good = ob.to_bytes()
    bad_inputs = [
        good[:-1],  # truncated
        good + b"\x00",  # trailing junk
        good[:10] + bytes((good[10] ^ 0x01,)) + good[11:],  # a flipped bit in a record
        good[:2] + b"\x09" + good[3:],  # another version
        b"",
        b"garbage that is not an outbox",
    ]
    for data in bad_inputs:
        back = Outbox()
        assert back.from_bytes(data, fallback_seq=4242) is False
        assert len(back) == 0 and back.errors == 1 and back.next_seq == 4242
    fresh = Outbox()
    assert fresh.from_bytes(None, fallback_seq=7) is False
    assert fresh.errors == 0 and fresh.next_seq == 7, "no file yet is not an error"


def case_bigger_saved_outbox_keeps_the_newest():
    big = Outbox(capacity=10)
    for i in range(10):
        big.add(1, 1, 80, i)
    small = Outbox(capacity=4)
    assert small.from_bytes(big.to_bytes())
    assert seqs(small) == [7, 8, 9, 10] and small.dropped == 6


def case_clear_keeps_or_sets_next_seq():
    ob = Outbox()
    ob.add(1, 1, 80, 0)
    ob.clear()
    assert len(ob) == 0 and ob.next_seq == 2
    ob.clear(500)
    assert ob.next_seq == 500


def case_capacity_is_validated():
    raises(ValueError, Outbox, 0)
    raises(ValueError, Outbox, 256)


def case_mem_blob():
    b = MemBlob()
    assert b.read() is None
    b.write(bytearray(b"abc"))
    assert b.read() == b"abc" and b.writes == 1
    b.fail = True
    raises(OSError, b.write, b"x")
    assert b.read() == b"abc"
    b.erase()
    assert b.read() is None


def case_file_blob_round_trip_and_replace():
    path = "/tmp/hugband_outbox_case.bin"
    f = FileBlob(path)
    f.erase()
    assert f.read() is None
    ob = Outbox()
    ob.add(2, 99, 1200, 0)
    f.write(ob.to_bytes())
    f.write(ob.to_bytes())  # replacing an existing file works too
    back = Outbox()
    assert back.from_bytes(f.read()) and seqs(back) == [1]
    f.erase()
    assert f.read() is None
