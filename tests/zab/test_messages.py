"""The peer message codec: round trips of every type, and hostile bytes only ever become a DecodeError."""
from __future__ import annotations

import random
import struct
import zlib

from hypothesis import given, settings, strategies as st

from coord.core.zab import messages as M
from coord.jute import records as R

i64 = st.integers(-(1 << 63), (1 << 63) - 1)
u64 = st.integers(0, (1 << 64) - 1)
u32 = st.integers(0, (1 << 32) - 1)
u8 = st.integers(0, 255)
zx = st.integers(1, (1 << 62))


def entries(draw_zxids):
    out = []
    for i, z in enumerate(sorted(set(draw_zxids))):
        if i % 3 == 0:
            out.append(M.Entry(R.TxnHeader(5, i, z, 1000 + i, 1),
                               R.CreateTxn(f"/n{i}", b"d" * i, [R.ACL(31, R.Id("world", "anyone"))], i % 2 == 0, i)))
        elif i % 3 == 1:
            out.append(M.Entry(R.TxnHeader(5, i, z, 1000 + i, 5), R.SetDataTxn(f"/n{i}", b"x", i)))
        else:
            out.append(M.Entry(R.TxnHeader(5, i, z, 1000 + i, -11), R.CloseSessionTxn([f"/e{i}"])))
    return out


MESSAGES = st.one_of(
    st.builds(M.Notification, u8, i64, i64, i64, i64, u8),
    st.builds(M.FollowerInfo, i64, i64, i64, i64, u8, u32),
    st.builds(M.LeaderInfo, i64, u32),
    st.builds(M.AckEpoch, i64, i64, i64, u8),
    st.builds(M.Trunc, i64),
    st.builds(M.NewLeader, i64, i64),
    st.builds(M.AckNewLeader, i64, i64),
    st.builds(M.UpToDate, i64, i64),
    st.builds(M.Ack, i64),
    st.builds(M.Commit, i64),
    st.builds(M.Ping, i64),
    st.builds(M.SyncReq, u64),
    st.builds(M.SyncReply, u64, i64),
    st.builds(lambda zs: M.Diff(entries(zs)), st.lists(zx, max_size=8)),
    st.builds(lambda zs: M.Proposal(entries(zs)), st.lists(zx, max_size=8)),
    st.builds(lambda zs: M.Inform(entries(zs)), st.lists(zx, max_size=8)),
    st.builds(lambda z, d, extra: M.Snap(z, len(d) + extra, 0, d), i64, st.binary(max_size=64), st.integers(0, 99)),
    st.builds(M.Request, i64, st.integers(-(1 << 31), (1 << 31) - 1), st.integers(-(1 << 31), (1 << 31) - 1),
              st.binary(max_size=64), st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=4)
              .map(tuple)),
    st.builds(M.Pong, st.lists(i64, max_size=20)),
)


@settings(max_examples=400, deadline=None)
@given(MESSAGES, u64)
def test_round_trip(msg, seq):
    data = M.encode(msg, seq)
    got = M.decode(data)
    assert got, got
    s, m = got
    assert s == seq
    assert type(m) is type(msg)
    if hasattr(msg, "entries"):
        assert [e.blob for e in m.entries] == [e.blob for e in msg.entries]
        assert [e.hdr for e in m.entries] == [e.hdr for e in msg.entries]
    else:
        assert m == msg


@settings(max_examples=400, deadline=None)
@given(MESSAGES, st.data())
def test_any_damage_is_a_decode_error_never_an_exception(msg, data):
    raw = bytearray(M.encode(msg, 7))
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "byte"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif how == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=16))
    else:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = (raw[i] + data.draw(st.integers(1, 255))) & 0xFF
    got = M.decode(bytes(raw))
    assert isinstance(got, M.DecodeError), got


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(blob):
    got = M.decode(blob)
    assert isinstance(got, (tuple, M.DecodeError))


def _with_crc(raw: bytearray) -> bytes:
    """Re-seal a hand-built message so that only the body is wrong."""
    struct.pack_into(">I", raw, 12, zlib.crc32(bytes(raw[:12]), zlib.crc32(bytes(raw[16:]))))
    return bytes(raw)


def test_well_sealed_but_hostile_bodies():
    # a txn count far beyond what the bytes could hold
    raw = bytearray(M.encode(M.Proposal([]), 0))
    struct.pack_into(">I", raw, 16, 0xFFFFFFFF)
    got = M.decode(_with_crc(raw))
    assert isinstance(got, M.DecodeError) and "count" in got.reason
    # txns out of zxid order
    es = entries([5, 9])
    raw = bytearray(M.encode(M.Proposal([es[1], es[0]]), 0))
    assert isinstance(M.decode(bytes(raw)), M.DecodeError)
    # a txn blob that does not parse
    raw = bytearray(M.encode(M.Diff([]), 0)[:16]) + struct.pack(">II", 1, 3) + b"abc"
    assert isinstance(M.decode(_with_crc(raw)), M.DecodeError)
    # a snapshot chunk beyond its stated total
    assert isinstance(M.decode(M.encode(M.Snap(1, 2, 0, b"abcd"), 0)), M.DecodeError)
    # unknown type, version, flags
    for i, v in ((0, 9), (1, 99), (3, 1)):
        raw = bytearray(M.encode(M.Ack(1), 0))
        raw[i] = v
        assert isinstance(M.decode(_with_crc(raw)), M.DecodeError)
    # over the size bound
    big = M.encode(M.Snap(1, 5000, 0, b"x" * 5000), 0)
    assert isinstance(M.decode(big, max_bytes=4096), M.DecodeError)


def test_random_garbage_fuzz_is_fast_and_quiet():
    r = random.Random(4)
    for _ in range(20000):
        blob = bytes(r.getrandbits(8) for _ in range(r.randint(0, 40)))
        if len(blob) > 2 and r.random() < 0.5:
            blob = bytes([1, r.choice(list(M.TYPES))]) + blob[2:]
        got = M.decode(blob)
        assert isinstance(got, (tuple, M.DecodeError))


def test_forwarded_request_identities_hostile_and_remembered():
    """A forwarded request's identities are remembered by their encoding (decoded once per distinct
    encoding); lengths that run past the message, or bad UTF-8, still only make a DecodeError."""
    a = M.Request(1, 2, 1, b"body", (("ip", "10.0.0.1"),))
    b = M.Request(1, 3, 1, b"body", (("ip", "10.0.0.1"), ("digest", "u:x")))
    c = M.Request(1, 4, 1, b"body", (("ip", "10.0.0.2"),))
    for _ in range(3):
        for m in (a, b, c):
            assert M.decode(M.encode(m, 1))[1] == m
    good = bytearray(M.encode(a, 1))
    auth_at = 16 + 20 + len(b"body")            # envelope, sid/cxid/type/len, body
    for mutate in (
        lambda raw: struct.pack_into(">I", raw, auth_at, 2),                 # one entry more than sent
        lambda raw: struct.pack_into(">I", raw, auth_at + 4, 1000),          # scheme longer than the message
        lambda raw: raw.__setitem__(slice(auth_at + 8, auth_at + 10), b"\xff\xfe"),  # scheme not UTF-8
        lambda raw: struct.pack_into(">I", raw, 16 + 16, 10_000),            # body longer than the message
    ):
        raw = bytearray(good)
        mutate(raw)
        got = M.decode(_with_crc(raw))
        assert isinstance(got, M.DecodeError), got
    assert M.decode(bytes(good))[1] == a        # the hostile ones left nothing wrong behind
