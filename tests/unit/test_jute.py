"""Round-trips of every jute record, exact byte layouts, and hostile bytes only ever raise JuteError."""
import struct

import pytest
from hypothesis import given, settings, strategies as st

from coord.jute import records as R
from coord.jute.codec import JuteError, decode
from coord.jute.frames import FrameSplitter, FrameTooLarge, frame

INT = st.integers(-(2**31), 2**31 - 1)
LONG = st.integers(-(2**63), 2**63 - 1)
BUF = st.one_of(st.none(), st.binary(max_size=64))
USTR = st.one_of(st.none(), st.text(max_size=24))


def strategy_for(t: str):
    if t == "int":
        return INT
    if t == "long":
        return LONG
    if t == "bool":
        return st.booleans()
    if t == "buffer":
        return BUF
    if t == "ustring":
        return USTR
    if t.startswith("vector<"):
        return st.one_of(st.none(), st.lists(st.deferred(lambda: strategy_for(t[7:-1])), max_size=4))
    return record_strategy(getattr(R, t))


def record_strategy(cls):
    return st.builds(cls, **{f: strategy_for(t) for f, t in cls.FIELDS})


@pytest.mark.parametrize("cls", R.ALL, ids=lambda c: c.__name__)
def test_every_record_round_trips(cls):
    @settings(max_examples=60, deadline=None)
    @given(record_strategy(cls))
    def check(rec):
        data = rec.encode()
        back, pos = decode(cls, data, exact=True)
        assert back == rec and pos == len(data)
        # Every strict prefix is rejected as truncated, never misread.
        for cut in {0, len(data) // 2, len(data) - 1} - {len(data)}:
            if cut < len(data):
                with pytest.raises(JuteError):
                    decode(cls, data[:cut], exact=True)
    check()


def test_stat_layout_matches_zookeeper():
    s = R.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    assert s.encode() == struct.pack(">qqqqiiiqiiq", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


def test_null_and_empty_buffers_differ():
    assert R.GetDataResponse(None, R.Stat(*[0] * 11)).encode()[:4] == b"\xff\xff\xff\xff"
    assert R.GetDataResponse(b"", R.Stat(*[0] * 11)).encode()[:4] == b"\x00\x00\x00\x00"
    assert decode(R.GetDataResponse, R.GetDataResponse(None, R.Stat(*[0] * 11)).encode())[0].data is None


def test_connect_request_layout():
    c = R.ConnectRequest(0, 5, 30000, 0, b"\0" * 16)
    assert c.encode() == struct.pack(">iqiqi", 0, 5, 30000, 0, 16) + b"\0" * 16


@pytest.mark.parametrize("cls", R.ALL, ids=lambda c: c.__name__)
def test_hostile_bytes_only_raise_jute_error(cls):
    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=200))
    def check(data):
        try:
            decode(cls, data)
        except JuteError:
            pass
    check()


def test_huge_declared_lengths_are_refused_without_allocating():
    for payload in (struct.pack(">i", 2**31 - 1), struct.pack(">i", 10**9) + b"x"):
        with pytest.raises(JuteError):
            decode(R.GetDataRequest, payload)
        with pytest.raises(JuteError):
            decode(R.GetChildrenResponse, payload)


def test_invalid_utf8_decodes_with_replacements_as_java():
    # BinaryInputArchive.readString is new String(bytes, UTF_8): malformed input becomes U+FFFD.
    r, _ = decode(R.DeleteRequest, struct.pack(">i", 2) + b"\xff\xfe" + struct.pack(">i", 0))
    assert r.path == "\ufffd\ufffd"


def test_negative_lengths_as_java():
    # -1 is null; other negative string/buffer lengths fail; other negative vector counts are empty.
    with pytest.raises(JuteError):
        decode(R.DeleteRequest, struct.pack(">ii", -2, 0))
    with pytest.raises(JuteError):
        decode(R.GetDataResponse, struct.pack(">i", -5) + bytes(68))
    assert decode(R.GetChildrenResponse, struct.pack(">i", -1))[0].children is None
    assert decode(R.GetChildrenResponse, struct.pack(">i", -7))[0].children == []


@given(st.lists(st.binary(max_size=50), max_size=20), st.data())
def test_frame_splitter_reassembles_any_chunking(payloads, data):
    stream = b"".join(frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    fs = FrameSplitter(1000)
    got, prev = [], 0
    for c in cuts + [len(stream)]:
        got += fs.feed(stream[prev:c])
        prev = c
    assert got == payloads and fs.buffered() == 0


def test_frame_splitter_bounds():
    fs = FrameSplitter(100)
    with pytest.raises(FrameTooLarge):
        fs.feed(struct.pack(">i", 101))
    with pytest.raises(FrameTooLarge):
        FrameSplitter(100).feed(struct.pack(">i", -5))
    assert FrameSplitter(100).feed(frame(b"x" * 100)) == [b"x" * 100]
