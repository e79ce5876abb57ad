"""Shared helpers for the storage tests: build trees and logs through the real apply path."""
from __future__ import annotations

import random

from coord.core import acl as aclmod
from coord.core.datatree import DataTree, acl_records
from coord.jute import records as R

OPEN = acl_records(aclmod.OPEN_ACL_UNSAFE)


class TxnMaker:
    """Stamps txns with consecutive zxids, the way a sequencer would (the prep rules are not
    needed here: every txn is built to succeed against the tree it is applied to)."""

    def __init__(self, start_zxid: int = 0, time_ms: int = 1_700_000_000_000):
        self.zxid = start_zxid
        self.time = time_ms

    def hdr(self, t: int, session: int = 0, cxid: int = 0) -> R.TxnHeader:
        self.zxid += 1
        self.time += 1
        return R.TxnHeader(session, cxid, self.zxid, self.time, t)

    def create(self, path, data=b"", ephemeral_owner=0, parent_cversion=-1):
        return self.hdr(1, ephemeral_owner), R.CreateTxn(path, data, OPEN, bool(ephemeral_owner), parent_cversion)

    def set_data(self, path, data, version):
        return self.hdr(5), R.SetDataTxn(path, data, version)

    def delete(self, path):
        return self.hdr(2), R.DeleteTxn(path)

    def session(self, sid, timeout=10000):
        return self.hdr(-10, sid), R.CreateSessionTxn(timeout)

    def close(self, sid, paths=()):
        return self.hdr(-11, sid), R.CloseSessionTxn(list(paths))

    def multi(self, subs):
        """subs: [(type, record)] applied atomically."""
        return self.hdr(14), R.MultiTxn([R.Txn(t, rec.encode()) for t, rec in subs])


def random_txns(tree: DataTree, mk: TxnMaker, n: int, rng: random.Random):
    """Yield n (hdr, txn) that apply cleanly to tree, applying each as it goes."""
    sessions = list(tree.sessions)
    for _ in range(n):
        paths = [p for p in tree.nodes if p.startswith("/t")]
        r = rng.random()
        if not paths:
            ht = mk.create("/t", b"root")
        elif r < 0.05 or not sessions:
            sid = 0x1000 + mk.zxid
            sessions.append(sid)
            ht = mk.session(sid)
        elif r < 0.45:
            parent = rng.choice(paths)
            owner = rng.choice(sessions) if rng.random() < 0.2 else 0
            if tree.nodes[parent].owner:
                parent = "/t"
            ht = mk.create(f"{parent}/n{mk.zxid + 1}", rng.randbytes(rng.randrange(0, 64)), owner)
        elif r < 0.7:
            p = rng.choice(paths)
            ht = mk.set_data(p, rng.randbytes(8), tree.nodes[p].version + 1)
        elif r < 0.85:
            leaves = [p for p in paths if p != "/t" and not tree.nodes[p].children]
            if not leaves:
                continue
            ht = mk.delete(rng.choice(leaves))
        elif r < 0.95:
            a = f"/t/m{mk.zxid + 1}"
            ht = mk.multi([(1, R.CreateTxn(a, b"a", OPEN, False, -1)),
                           (1, R.CreateTxn(a + "/x", b"b", OPEN, False, -1)),
                           (5, R.SetDataTxn("/t", b"m", tree.nodes["/t"].version + 1))])
        else:
            sid = rng.choice(sessions)
            sessions.remove(sid)
            ht = mk.close(sid, sorted(tree.ephemerals.get(sid, ())))
        res = tree.apply(*ht)
        assert res.err == 0, (ht, res.err)
        yield ht


def tree_state(tree: DataTree) -> dict:
    """Everything a client can observe of a tree, plus sessions."""
    out = {}
    for p, n in tree.nodes.items():
        out[p] = (n.data, n.acl, n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion,
                  n.owner, n.pzxid, frozenset(n.children or ()))
    return {"nodes": out, "sessions": dict(tree.sessions), "zxid": tree.last_zxid, "digest": tree.digest}
