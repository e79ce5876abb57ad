"""Per-request latency of ZooKeeper client traffic, read from a loopback packet capture: the same
yardstick for coord and ZooKeeper, taken outside both (tcpdump in the kernel, nothing in the request
path). `.venv/bin/python -m tests.kafka.zkwire PCAP PORT[,PORT..] [--from T0 --to T1]` prints, per
server port and operation, count and latency percentiles (request's last byte seen -> reply's last
byte seen), the deepest pipeline and how long the client kept nothing in flight (its own think time).

Frames are cut from the reassembled TCP streams of the given server ports; a connection's first frame
each way is the ConnectRequest / ConnectResponse; notifications (xid -1) and pings are counted apart.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import struct
import subprocess
import time
from contextlib import contextmanager
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

OPS = {0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData", 6: "getACL",
       7: "setACL", 8: "getChildren", 9: "sync", 11: "ping", 12: "getChildren2", 13: "check", 14: "multi",
       15: "create2", 16: "reconfig", 17: "checkWatches", 18: "removeWatches", 19: "createContainer",
       20: "deleteContainer", 21: "createTTL", 22: "multiRead", 100: "auth", 101: "setWatches",
       102: "sasl", 103: "getEphemerals", 104: "getAllChildrenNumber", 105: "setWatches2",
       106: "addWatch", 107: "whoAmI", -10: "createSession", -11: "closeSession", -1: "error"}


@dataclass
class Request:
    conn: tuple
    server_port: int
    xid: int
    op: str
    t_req: float
    t_rep: float = -1.0
    err: int = 0
    depth: int = 0          # requests of this connection in flight when it was sent (itself included)

    @property
    def latency(self) -> float:
        return self.t_rep - self.t_req


def _packets(path: Path):
    """(time, src port, dst port, seq, payload) of the TCP segments in a pcap (Ethernet or Linux SLL)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(endian + "IIII", data, off)
        off += 16
        pkt = data[off:off + incl]
        off += incl
        t = sec + frac / (1e9 if nano else 1e6)
        l2 = {1: 14, 113: 16, 276: 20}.get(linktype, 14)
        if len(pkt) < l2 + 20:
            continue
        ethertype = struct.unpack_from(">H", pkt, l2 - 2)[0]
        if ethertype != 0x0800:
            continue
        ip = pkt[l2:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        if ip[9] != 6:
            continue
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack_from(">HHI", tcp)
        doff = (tcp[12] >> 4) * 4
        flags = tcp[13]
        yield t, sport, dport, seq, bytes(tcp[doff:]), flags


@dataclass
class _Stream:
    next_seq: int | None = None
    buf: bytearray = field(default_factory=bytearray)
    pending: dict = field(default_factory=dict)
    connected: bool = False


def requests(path: Path, server_ports: set[int]) -> tuple[list[Request], dict[str, int]]:
    """Every request on the server ports with its reply matched by xid; and counts of frames that are
    not request/reply pairs (notifications, pings)."""
    streams: dict[tuple, _Stream] = defaultdict(_Stream)
    inflight: dict[tuple, dict[int, Request]] = defaultdict(dict)
    out: list[Request] = []
    other: dict[str, int] = defaultdict(int)
    for t, sport, dport, seq, payload, flags in _packets(path):
        if dport in server_ports:
            key, to_server, conn, sp = (sport, dport), True, (sport, dport), dport
        elif sport in server_ports:
            key, to_server, conn, sp = (sport, dport), False, (dport, sport), sport
        else:
            continue
        s = streams[key]
        if flags & 0x02:          # SYN: the stream starts after it
            streams[key] = s = _Stream(next_seq=(seq + 1) & 0xFFFFFFFF)
            continue
        if not payload:
            continue
        if s.next_seq is None:    # capture began mid-connection: start at a segment that opens a frame
            if not _opens_frame(payload, to_server):
                continue
            s.next_seq, s.connected = seq, True
        s.pending[seq] = payload
        while s.next_seq in s.pending:
            p = s.pending.pop(s.next_seq)
            s.buf += p
            s.next_seq = (s.next_seq + len(p)) & 0xFFFFFFFF
        # drop retransmitted segments wholly before next_seq
        for old in [q for q in s.pending if ((s.next_seq - q) & 0xFFFFFFFF) < 0x80000000]:
            s.pending.pop(old)
        while len(s.buf) >= 4:
            n = struct.unpack_from(">i", s.buf)[0]
            if len(s.buf) < 4 + n:
                break
            frame = bytes(s.buf[4:4 + n])
            del s.buf[:4 + n]
            if not s.connected:
                s.connected = True
                if to_server:
                    out.append(Request(conn, sp, -10**9, "connect", t, depth=1))
                    inflight[conn][-10**9] = out[-1]
                else:
                    r = inflight[conn].pop(-10**9, None)
                    if r:
                        r.t_rep = t
                continue
            if to_server:
                xid, op = struct.unpack_from(">ii", frame)
                name = OPS.get(op, str(op))
                if op == 14:
                    name = "multi(" + ",".join(_multi_ops(frame[8:])) + ")"
                r = Request(conn, sp, xid, name, t, depth=len(inflight[conn]) + 1)
                inflight[conn][xid] = r
                out.append(r)
            else:
                xid, _zxid, err = struct.unpack_from(">iqi", frame)
                r = inflight[conn].pop(xid, None)
                if r is None:
                    other["notification" if xid == -1 else f"unmatched xid {xid}"] += 1
                    continue
                r.t_rep, r.err = t, err
    return [r for r in out if r.t_rep >= 0], dict(other)


def _opens_frame(payload: bytes, to_server: bool) -> bool:
    """Whether a segment plausibly starts a request (len, xid, known op) or a reply (len, xid, zxid,
    err): the ZooKeeper client writes each request with one write, so a segment mostly does."""
    if len(payload) < 16:
        return False
    n, xid, op = struct.unpack_from(">iii", payload)
    if not 8 <= n <= 1 << 26:
        return False
    if to_server:
        return op in OPS and op >= 0 and (xid > 0 or xid in (-2, -4, -8))
    return -8 <= xid and len(payload) >= 20 and -200 <= struct.unpack_from(">i", payload, 16)[0] <= 0


def _multi_ops(body: bytes) -> list[str]:
    """The op names inside a multi request: MultiHeader (type, done, err), then each op's record."""
    names, off = [], 0

    def skip_buf(o: int) -> int:
        n = struct.unpack_from(">i", body, o)[0]
        return o + 4 + max(n, 0)

    try:
        while off + 9 <= len(body):
            typ, done = struct.unpack_from(">i?", body, off)
            off += 9
            if done:
                break
            names.append(OPS.get(typ, str(typ)))
            off = skip_buf(off)                        # path
            if typ in (13, 2):                         # check, delete: version
                off += 4
            elif typ == 5:                             # setData: data, version
                off = skip_buf(off) + 4
            elif typ in (1, 15, 19, 21):               # create*: data, ACLs (perms, scheme, id), flags (ttl)
                off = skip_buf(off)
                count = struct.unpack_from(">i", body, off)[0]
                off += 4
                for _ in range(max(count, 0)):
                    off = skip_buf(skip_buf(off + 4))
                off += 4 + (8 if typ == 21 else 0)
            elif typ not in (4, 8):                    # multiRead's getData / getChildren: path only
                break
    except struct.error:
        pass
    return names


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def summary(reqs: list[Request], t0: float | None = None, t1: float | None = None) -> list[str]:
    """Lines: per server port and op, count and latency (ms) p50/p90/p99/max; per connection busy time."""
    sel = [r for r in reqs if (t0 is None or r.t_req >= t0) and (t1 is None or r.t_req <= t1)]
    lines = []
    by: dict[tuple, list[Request]] = defaultdict(list)
    for r in sel:
        by[(r.server_port, r.op)].append(r)
    for (port, op), rs in sorted(by.items(), key=lambda kv: -len(kv[1])):
        lat = [r.latency * 1000 for r in rs]
        lines.append(f"port {port} {op:28s} n={len(rs):6d} ms p50={pct(lat, .5):7.2f} p90={pct(lat, .9):7.2f} "
                     f"p99={pct(lat, .99):7.2f} max={max(lat):7.2f} sum={sum(lat):9.0f} "
                     f"depth p50={pct([r.depth for r in rs], .5):.0f} max={max(r.depth for r in rs)}")
    conns: dict[tuple, list[Request]] = defaultdict(list)
    for r in sel:
        conns[r.conn].append(r)
    for conn, rs in sorted(conns.items(), key=lambda kv: -len(kv[1]))[:6]:
        span = max(r.t_rep for r in rs) - min(r.t_req for r in rs)
        busy = _union([(r.t_req, r.t_rep) for r in rs])
        lines.append(f"conn {conn}: {len(rs)} requests over {span:.2f} s; something in flight {busy:.2f} s, "
                     f"nothing in flight (client's own time) {span - busy:.2f} s")
    return lines


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


@contextmanager
def capture(ports, path: Path):
    """tcpdump of the loopback traffic to and from these server ports into path while the block runs
    (a 64 MiB kernel buffer: a loaded machine must not drop packets). Needs tcpdump and root."""
    exe = shutil.which("tcpdump")
    if exe is None:
        raise RuntimeError("tcpdump is not installed (apt-get install tcpdump)")
    expr = " or ".join(f"tcp port {p}" for p in ports)
    proc = subprocess.Popen([exe, "-i", "lo", "-B", "65536", "-s", "0", "-w", str(path), expr],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)                       # tcpdump attaches its filter before the first packet we want
    if proc.poll() is not None:
        raise RuntimeError(f"tcpdump failed: {proc.stderr.read().decode(errors='replace')[-500:]}")
    try:
        yield path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        path.with_suffix(".stats").write_bytes(err)   # "N packets dropped by kernel"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pcap", type=Path)
    ap.add_argument("ports")
    ap.add_argument("--from", dest="t0", type=float)
    ap.add_argument("--to", dest="t1", type=float)
    a = ap.parse_args()
    reqs, other = requests(a.pcap, {int(p) for p in a.ports.split(",")})
    print("\n".join(summary(reqs, a.t0, a.t1)))
    print("not request/reply:", other)


if __name__ == "__main__":
    main()
