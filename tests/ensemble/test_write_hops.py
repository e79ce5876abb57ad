"""The write path's hops leave in the loop turn that made them (issue 17).

A write through a follower crosses four peer hops (REQUEST, PROPOSAL, ACK, COMMIT); every loop turn a
message waits before it is written is one more chance to be preempted on a loaded machine, which is
how coord's single-write latency through a follower came to be several times ZooKeeper's. Three real
EnsembleNodes (real sockets, real peer links, real txn logs, forceSync=no) run on this test's event
loop; a client writes through a follower, and after every flush of every member nothing may be left
queued on a peer link or in the txn log: not the REQUEST, not the PROPOSAL, not the follower's ACK.
The same writes through real ZooKeeper 3.8 (tests.support.ensemble) are timed for comparison in
tests/bench/bench_follower_write.py, not here: this checks the mechanism, not milliseconds.
"""
from __future__ import annotations

import asyncio

from coord.aio.ensemble_node import EnsembleNode
from coord.aio.zoocfg import load
from coord.bench.client import Session
from tests.support.ensemble import _free_ports


def _config(tmp_path, sid: int, ports: list[int]) -> str:
    d = tmp_path / f"s{sid}"
    (d / "data").mkdir(parents=True)
    (d / "data" / "myid").write_text(f"{sid}\n")
    lines = ["tickTime=200", "initLimit=10", "syncLimit=10", f"dataDir={d / 'data'}", "forceSync=no",
             "admin.enableServer=false", "standaloneEnabled=false", "4lw.commands.whitelist=*"]
    lines += [f"server.{s}=127.0.0.1:{ports[3 * s - 2]}:{ports[3 * s - 1]};127.0.0.1:{ports[3 * s - 3]}"
              for s in (1, 2, 3)]
    (d / "zoo.cfg").write_text("\n".join(lines) + "\n")
    return str(d / "zoo.cfg")


def _watch_flushes(node: EnsembleNode, seen: dict) -> None:
    """After each flush: the peer links and the txn log must have nothing left for a later turn."""
    inner = node.flush

    def flush() -> None:
        before = node.transport.messages_sent if node.transport is not None else 0
        inner()
        tr = node.transport
        if tr is None:
            return
        if tr.messages_sent > before:
            seen["flushes_that_sent"] += 1
        left = [c.sid for c in tr.conns if c.pending and not c.closed and c.transport is not None]
        if left or node.txnlog.pending():
            seen["left_behind"].append((node.sid, node.role, left, node.txnlog.pending()))
    node.flush = flush


async def _run(tmp_path) -> dict:
    ports = _free_ports(9)
    nodes = []
    seen = {"flushes_that_sent": 0, "left_behind": []}
    for sid in (1, 2, 3):
        node = EnsembleNode(load(_config(tmp_path, sid, ports)))
        _watch_flushes(node, seen)
        nodes.append(node)
    try:
        for n in nodes:
            await n.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not (sum(n.role == "leading" for n in nodes) == 1
                   and all(n.core.serving for n in nodes)):
            assert loop.time() < deadline, f"no quorum: {[n.role for n in nodes]}"
            await asyncio.sleep(0.05)
        follower = next(n for n in nodes if n.role == "following")
        seen["left_behind"].clear()
        seen["flushes_that_sent"] = 0

        def client() -> int:
            s = Session("127.0.0.1", follower.port)
            try:
                s.call("create", "/hops", b"x")
                return len(s.latency("setData", ["/hops"] * 200, b"y" * 100))
            finally:
                s.close()
        seen["writes"] = await asyncio.wait_for(asyncio.to_thread(client), 120)
        return seen
    finally:
        for n in nodes:
            await n.stop()


def test_write_through_a_follower_leaves_nothing_queued_for_a_later_turn(tmp_path):
    seen = asyncio.run(_run(tmp_path))
    assert seen["writes"] == 200
    # REQUEST, PROPOSAL, ACK and COMMIT of 200 writes were sent from inside flushes
    assert seen["flushes_that_sent"] >= 4 * 200
    assert seen["left_behind"] == [], seen["left_behind"][:5]
