"""Run a fault scenario under the concurrent kazoo workload and check what the clients saw.

Shared by the partition and disk-fault suites (tests/ensemble/test_partitions.py,
test_disk_faults.py), for coord and real ZooKeeper alike: the workload (tests/support/history.py,
sequential appends included) runs around `scenario(leader, followers, notes)`, then the final state
is read from a fresh session and the history checked. One `RESULT` line per run (kind, acknowledged
writes and appends, and whatever the scenario put in `notes`, e.g. seconds to recover).
"""
from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

from tests.support.ensemble import Ensemble
from tests.support.faultproxy import FaultProxy
from tests.support.history import Workload, check

ZK_PROTOCOL_VERSIONS = (-65536, -65535)   # QuorumCnxManager's InitialMessage, 3.5+


class ZkCallbackProxy(FaultProxy):
    """A FaultProxy that also keeps ZooKeeper's election call-backs on the proxy.

    ZooKeeper drops an election connection dialled by a lower sid and dials back the address the
    dialler advertised in its InitialMessage: its own real election port, past the proxy, so a
    partition would not cut that pair's votes (an isolated leader then kept being elected by the
    other two, who could not reach its quorum port). On each election route (src -> dst) the
    advertised address is rewritten to the route dst -> src, so the call-back is proxied too; and
    the dialler's bytes are delivered before its early close is passed on.
    coord needs none of this: its higher sid always dials, by its own configuration."""

    def __init__(self, election_routes: dict[tuple, int]):
        super().__init__()
        self.election_routes = election_routes    # (src, dst) -> route port of src dialling dst

    def _accept(self, r):
        conn = super()._accept(r)
        if r.name == "election":
            conn.up.push = self._rewriting(conn.up.push, self.election_routes[(r.dst, r.src)])
            conn.client.eof_received = lambda: self._close_when_sent(conn)
        return conn

    def _close_when_sent(self, conn) -> bool:
        """A ZooKeeper server with the lower sid writes its InitialMessage and closes at once: deliver
        those bytes before closing the other side (bounded: a partition may hold them)."""
        async def later():
            for _ in range(200):
                if conn.closed or (not conn.up.q and conn.up.out is not None):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            conn.close()
        self.loop.create_task(later())
        return True

    @staticmethod
    def _rewriting(push, back_port: int):
        buf = bytearray()
        done = False

        def rewrite(data: bytes) -> None:
            nonlocal done
            if done:
                return push(data)
            buf.extend(data)
            if len(buf) >= 8 and struct.unpack_from(">q", buf)[0] not in ZK_PROTOCOL_VERSIONS:
                done = True                        # not an InitialMessage with addresses: as is
                return push(bytes(buf))
            if len(buf) < 20 or len(buf) < 20 + struct.unpack_from(">i", buf, 16)[0]:
                return None                        # wait for the whole message
            n = struct.unpack_from(">i", buf, 16)[0]
            addr = f"127.0.0.1:{back_port}".encode()
            done = True
            push(bytes(buf[:16]) + struct.pack(">i", len(addr)) + addr + bytes(buf[20 + n:]))
        return rewrite


def proxied_ensemble(workdir: Path, kind: str, n: int = 3, **kw) -> Ensemble:
    """An Ensemble with every peer link through the fault proxy; for ZooKeeper, election call-backs
    included (ZkCallbackProxy on the same route ports)."""
    ens = Ensemble(workdir, n, kind=kind, proxied=True, **kw)
    if kind == "zookeeper":
        old = ens.proxy
        specs = [(r.src, r.dst, r.target[1], r.name, r.port) for r in old.routes]
        old.close()
        new = ZkCallbackProxy({pair: ports[1] for pair, ports in ens.routes.items()})
        for src, dst, target_port, name, port in specs:
            new.route(src, dst, target_port, name=name, listen_port=port)
        ens.proxy = new
    return ens


def run_checked(ens: Ensemble, name: str, scenario, *, on_leader: int = 0, clients: int = 6, seed: int = 1,
                min_acked: int = 30, min_appends: int = 5, append_ratio: float = 0.15):
    """`on_leader` of the clients prefer the leader, the rest the followers in turn."""
    leader = ens.wait_serving()
    followers = [s for s in ens.members if s != leader]
    prefs = [leader] * on_leader + [followers[i % len(followers)] for i in range(clients - on_leader)]
    wl = Workload([ens.prefer(s) for s in prefs], [f"/k{i}" for i in range(4)], seed=seed,
                  append_ratio=append_ratio).start()
    t0 = time.monotonic()
    notes: dict = {}
    try:
        scenario(leader, followers, notes)
        time.sleep(1.0)                  # some traffic on the healed ensemble
    except BaseException:
        wl.finish()
        print(ens.dump_logs())
        raise
    wl.finish()
    ens.wait_serving(wait=60)
    final = wl.final_reads(ens.connect_string())
    appended = wl.final_appended(ens.connect_string())
    rep = check(wl.history, final, appended=appended)
    extra = " ".join(f"{k}={v}" for k, v in notes.items())
    print(f"RESULT {name} kind={ens.kind} ok={rep.ok} acked_writes={wl.acknowledged_writes()} "
          f"acked_appends={wl.acknowledged_appends()} {extra} wall_s={time.monotonic() - t0:.1f}\n"
          f"  {rep.summary()}")
    if not rep.ok or wl.errors:
        print(ens.dump_logs())
    assert not wl.errors, wl.errors[:5]
    assert rep.ok, rep.summary() + "\n" + "\n".join(rep.anomalies()[:8])
    assert wl.acknowledged_writes() >= min_acked, rep.summary()
    assert wl.acknowledged_appends() >= min_appends, rep.summary()
    return wl, rep
