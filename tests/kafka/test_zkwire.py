"""tests/kafka/zkwire.py reads the right requests and latencies out of a capture: frames cut across
segments, a multi named by its ops, a connection whose start the capture missed, retransmits,
notifications and pings. The capture is written here from coord's own jute records (the reader is
what is tested; the bench runs it on real tcpdump captures of Kafka's traffic)."""
from __future__ import annotations

import struct

from coord.jute import records as R
from tests.kafka import zkwire

SERVER = 2181


def _pcap(packets) -> bytes:
    """A little-endian microsecond pcap of Ethernet/IPv4/TCP segments: (time, sport, dport, seq, flags, payload)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for t, sport, dport, seq, flags, payload in packets:
        tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, b"\x7f\0\0\1", b"\x7f\0\0\1") + tcp
        frame = bytes(12) + b"\x08\x00" + ip
        sec = int(t)
        out += struct.pack("<IIII", sec, round((t - sec) * 1e6), len(frame), len(frame)) + frame
    return bytes(out)


def _frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def _request(xid: int, op: int, body: bytes = b"") -> bytes:
    return _frame(R.RequestHeader(xid, op).encode() + body)


def _reply(xid: int, err: int = 0, body: bytes = b"") -> bytes:
    return _frame(R.ReplyHeader(xid, 7, err).encode() + body)


def _kafka_multi(xid: int) -> bytes:
    """Kafka's controller write: multi(check /controller_epoch, setData state)."""
    body = (R.MultiHeader(13, False, -1).encode() + R.CheckVersionRequest("/controller_epoch", 3).encode()
            + R.MultiHeader(5, False, -1).encode() + R.SetDataRequest("/p/state", b"{}" * 40, 9).encode()
            + R.MultiHeader(-1, True, -1).encode())
    return _request(xid, 14, body)


class Stream:
    """One direction of a TCP connection: sequence numbers advance with what was sent."""

    def __init__(self, sport: int, dport: int, seq: int):
        self.sport, self.dport, self.seq = sport, dport, seq

    def syn(self, t: float):
        p = (t, self.sport, self.dport, self.seq, 0x02, b"")
        self.seq += 1
        return p

    def send(self, t: float, data: bytes):
        p = (t, self.sport, self.dport, self.seq, 0x18, data)
        self.seq += len(data)
        return p


def test_requests_and_latencies_from_a_capture(tmp_path):
    # connection A: seen from its SYN (connect frames first)
    a_up, a_down = Stream(50000, SERVER, 1000), Stream(SERVER, 50000, 9000)
    connect = _frame(R.ConnectRequest(0, 0, 10000, 0, bytes(16)).encode())
    multi = _kafka_multi(2)
    pk = [a_up.syn(0.0), a_down.syn(0.0),
          a_up.send(1.000, connect),
          a_down.send(1.002, _frame(R.ConnectResponse(0, 10000, 5, bytes(16)).encode())),
          a_up.send(2.000, _request(1, 4, R.GetDataRequest("/p/state", False).encode())),
          a_up.send(2.001, multi[:10])]              # the multi cut across two segments
    retransmit = pk[-1]
    pk += [a_up.send(2.003, multi[10:]),
           retransmit,                              # a retransmitted segment: read once
           a_down.send(2.004, _reply(1, 0, b"\0" * 20)),
           a_down.send(2.010, _reply(-1)),          # a watch notification
           a_down.send(2.013, _reply(2)),
           a_up.send(3.000, _request(-2, 11)),
           a_down.send(3.0005, _reply(-2))]
    # connection B: the capture began after its connect; its first segment opens a request
    b_up, b_down = Stream(50001, SERVER, 70000), Stream(SERVER, 50001, 80000)
    pk += [b_down.send(4.0, b"\0\0\0\x10garbage-tail-of-a-reply"),   # mid-frame: skipped
           b_up.send(4.1, _request(9, 5, R.SetDataRequest("/x", b"v", -1).encode())),
           b_down.send(4.125, _reply(9))]
    pk.sort(key=lambda p: p[0])
    path = tmp_path / "c.pcap"
    path.write_bytes(_pcap(pk))

    reqs, other = zkwire.requests(path, {SERVER})
    got = sorted((r.conn[0], r.op, r.xid, round(r.latency * 1000, 1), r.depth) for r in reqs)
    assert got == [
        (50000, "connect", -10**9, 2.0, 1),
        (50000, "getData", 1, 4.0, 1),
        (50000, "multi(check,setData)", 2, 10.0, 2),   # sent while the getData was in flight
        (50000, "ping", -2, 0.5, 1),
        (50001, "setData", 9, 25.0, 1),
    ]
    assert other == {"notification": 1}

    lines = zkwire.summary(reqs, 1.5, 5.0)
    multi_line = next(line for line in lines if "multi(check,setData)" in line)
    assert "n=     1" in multi_line and "p50=  10.00" in multi_line
    busy = next(line for line in lines if line.startswith("conn (50000"))
    assert "3 requests" in busy      # getData, multi, ping in the window (the connect is before it)
