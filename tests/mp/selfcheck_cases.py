"""Self-check of the dual-interpreter case runner (tests/mp/cases.py): each case runs under CPython
and under real MicroPython. Also the smallest example of a *_cases.py module."""

import struct
import sys

import cases


def case_runs_under_the_expected_interpreter():
    assert cases.EXPECT_IMPL in ("cpython", "micropython"), cases.EXPECT_IMPL
    assert sys.implementation.name == cases.EXPECT_IMPL, sys.implementation.name


def case_micropython_has_what_the_protocol_needs():
    import hashlib

    digest = hashlib.sha256(b"hug").digest()
    assert len(digest) == 32
    assert struct.pack("<HB", 0x1234, 7) == b"\x34\x12\x07"
    if sys.implementation.name == "micropython":
        from micropython import const

        assert const(3) == 3


def case_raises_helper_returns_the_exception():
    e = cases.raises(ValueError, int, "not a number")
    assert isinstance(e, ValueError)


def case_raises_helper_fails_when_nothing_is_raised():
    try:
        cases.raises(KeyError, len, "ok")
    except AssertionError as e:
        assert "KeyError" in str(e)
    else:
        raise AssertionError("raises() accepted a call that raised nothing")


def case_repo_path_points_into_the_repo():
    path = cases.repo_path("tests/vectors/x.json")
    assert path.endswith("/tests/vectors/x.json"), path
    if sys.implementation.name == "micropython":
        assert path == "/repo/tests/vectors/x.json", path
