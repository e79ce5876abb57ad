"""kill -9 of `coord serve` (forceSync=yes) at seeded random moments under a write load from several
kazoo clients: after a restart every acknowledged write is there, nothing unacknowledged is half
applied (multis are all or nothing), and sequence numbers and versions carry on."""
from __future__ import annotations

import random
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry

from tests.support.coord_server import CoordProcess

WORKERS = 5
OP_TIMEOUT = 8.0


def client(cs: str, timeout: float = 10.0) -> KazooClient:
    return KazooClient(hosts=cs, timeout=timeout, connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2),
                       command_retry=None)


class Worker(threading.Thread):
    """One kazoo client writing until its first error; remembers what was acknowledged."""

    def __init__(self, cs: str, wid: int, rnd: int, rng: random.Random, counter_version: int):
        super().__init__(daemon=True)
        self.cs, self.wid, self.rnd, self.rng = cs, wid, rnd, rng
        self.acked_creates: list[str] = []
        self.acked_seqs: list[str] = []
        self.acked_multis: list[str] = []
        self.counter_version = counter_version  # last acknowledged version of the counter node
        self.error: Exception | None = None
        self.ops = 0
        self.loaded = threading.Event()  # set after the first acknowledged write
        self.stopper: threading.Thread | None = None

    def run(self) -> None:
        zk = client(self.cs)
        base = f"/w{self.wid}"
        try:
            zk.start(timeout=15)
            i = 0
            while True:
                i += 1
                tag = f"r{self.rnd}i{i}"
                r = self.rng.random()
                # every wait is bounded: a request queued while the server is dead never returns
                if r < 0.4:
                    p = f"{base}/c-{tag}"
                    zk.create_async(p, tag.encode()).get(timeout=OP_TIMEOUT)
                    self.acked_creates.append(p)
                elif r < 0.6:
                    st = zk.set_async(f"{base}/counter", tag.encode(), version=self.counter_version).get(
                        timeout=OP_TIMEOUT)
                    assert st.version == self.counter_version + 1
                    self.counter_version = st.version
                elif r < 0.8:
                    p = zk.create_async(f"{base}/seq-", tag.encode(), sequence=True).get(timeout=OP_TIMEOUT)
                    self.acked_seqs.append(p)
                else:
                    t = zk.transaction()
                    t.create(f"{base}/ma-{tag}", b"a")
                    t.create(f"{base}/mb-{tag}", b"b")
                    t.set_data(f"{base}/mc", tag.encode())
                    res = t.commit_async().get(timeout=OP_TIMEOUT)
                    if any(isinstance(x, Exception) for x in res):
                        raise AssertionError(f"multi failed: {res}")
                    self.acked_multis.append(tag)
                self.ops += 1
                self.loaded.set()
        except (KazooException, OSError) as e:
            self.error = e
        except Exception as e:  # noqa: BLE001
            self.error = e
        finally:
            self.loaded.set()
            self.stopper = threading.Thread(target=_stop_quietly, args=(zk,), daemon=True)
            self.stopper.start()


def _stop_quietly(zk):
    try:
        zk.stop()
        zk.close()
    except Exception:  # noqa: BLE001
        pass


def verify(cs: str, workers_state: dict, log_text) -> None:
    zk = client(cs)
    zk.start(timeout=20)
    try:
        for wid, st in workers_state.items():
            base = f"/w{wid}"
            children = set(zk.get_children(base))
            for p in st["creates"]:
                data, _ = zk.get(p)
                assert data.decode() == p.rsplit("c-", 1)[1], p
            for p in st["seqs"]:
                assert p.rsplit("/", 1)[1] in children, f"acknowledged {p} lost\n{log_text()}"
            data, stat = zk.get(f"{base}/counter")
            assert st["counter"] <= stat.version <= st["counter"] + 1, (wid, st["counter"], stat.version)
            st["counter"] = stat.version
            tags_a = {c[3:] for c in children if c.startswith("ma-")}
            tags_b = {c[3:] for c in children if c.startswith("mb-")}
            assert tags_a == tags_b, f"half-applied multi: {tags_a ^ tags_b}"
            assert set(st["multis"]) <= tags_a
            # sequence numbers continue past every existing one; versions continue
            seqs = [int(c[4:]) for c in children if c.startswith("seq-")]
            p = zk.create(f"{base}/seq-", b"after", sequence=True)
            assert int(p.rsplit("-", 1)[1]) > max(seqs, default=-1)
            st["seqs"].append(p)
            new = zk.set(f"{base}/counter", b"after", version=stat.version)
            assert new.version == stat.version + 1
            st["counter"] = new.version
    finally:
        zk.stop()
        zk.close()


def crash_loop(tmp_path, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    print(f"crash test seed {seed}: replay with CRASH_SEED={seed}")
    srv = CoordProcess(tmp_path / "coord", force_sync=True,
                       extra_cfg={"snapCount": "400", "coord.maxLogFileBytes": "65536"})
    srv.start()
    zk = client(srv.connect_string)
    zk.start(timeout=15)
    for w in range(WORKERS):
        zk.create(f"/w{w}/counter", b"0", makepath=True)
        zk.create(f"/w{w}/mc", b"")
    zk.stop()
    zk.close()
    state = {w: {"creates": [], "seqs": [], "multis": [], "counter": 0} for w in range(WORKERS)}
    total_ops = 0
    try:
        for rnd in range(rounds):
            workers = [Worker(srv.connect_string, w, rnd, random.Random(rng.random()), state[w]["counter"])
                       for w in range(WORKERS)]
            for w in workers:
                w.start()
            for w in workers:  # kill under load, not while clients are still connecting
                w.loaded.wait(30)
            time.sleep(rng.uniform(0.05, 1.5))
            srv.stop(kill=True)
            for w in workers:
                w.join(30)
                assert not w.is_alive()
                assert not isinstance(w.error, AssertionError), w.error
                st = state[w.wid]
                st["creates"] += w.acked_creates
                st["seqs"] += w.acked_seqs
                st["multis"] += w.acked_multis
                st["counter"] = w.counter_version
                total_ops += w.ops
            for w in workers:  # old clients gone before the restart: no late resends
                w.stopper.join(30)
            srv.start()
            verify(srv.connect_string, state, srv.log_text)
        print(f"{total_ops} acknowledged writes over {rounds} kills")
        assert total_ops > rounds * 20, f"too little load ({total_ops} acknowledged writes)"
        snaps = list((srv.data_dir / "version-2").glob("snapshot.*"))
        assert snaps, "the load should have taken snapshots"
    finally:
        srv.stop()


def test_kill_9_under_load_loses_no_acknowledged_write(tmp_path):
    import os
    crash_loop(tmp_path, int(os.environ.get("CRASH_SEED", "20240917")), rounds=3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_kill_9_under_load_many_rounds(tmp_path, seed):
    crash_loop(tmp_path, 1000 + seed, rounds=8)
