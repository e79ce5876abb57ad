"""Write outage around a planned or unplanned stop of a server, as clients see it (coord and real
ZooKeeper alike, with one harness: tests.support.ensemble).

A `Writer` is a kazoo client, connected to the followers only, writing one znode in a loop (one
write in flight at a time, retried on connection loss) and recording when each write completed and
every connection state change. The outage of a stop is the longest gap between two completed writes
from just before the signal. Session loss (LOST) is recorded too.

    python -m tests.ops.outage [--trials 5] [--kinds coord,zookeeper]

prints the median outage of: coord leader SIGTERM (handoff), coord leader kill -9, ZooKeeper 3.8
leader SIGTERM, ZooKeeper leader kill -9.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path


class Writer:
    """One kazoo session writing in a loop; `times` are the monotonic completion times."""

    def __init__(self, hosts: str, path: str = "/outage"):
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry
        self.zk = KazooClient(hosts, timeout=10.0, connection_retry=KazooRetry(max_tries=-1, delay=0.01,
                                                                              max_delay=0.05))
        self.path = path
        self.times: list[float] = []
        self.states: list[tuple[float, str]] = []
        self.errors = 0
        self.stop_ev = threading.Event()
        self.thread: threading.Thread | None = None
        self.session_id = None

    def start(self) -> "Writer":
        self.zk.add_listener(lambda st: self.states.append((time.monotonic(), str(st))))
        self.zk.start(timeout=30)
        self.session_id = self.zk.client_id[0]
        self.zk.ensure_path(self.path)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        from kazoo.exceptions import KazooException
        i = 0
        while not self.stop_ev.is_set():
            try:
                self.zk.set(self.path, str(i).encode())
                self.times.append(time.monotonic())
                i += 1
            except KazooException:
                self.errors += 1
                time.sleep(0.002)
            except Exception:
                self.errors += 1
                time.sleep(0.01)

    def stop(self) -> None:
        self.stop_ev.set()
        if self.thread is not None:
            self.thread.join(15)
        try:
            self.zk.stop()
            self.zk.close()
        except Exception:
            pass

    def lost_before(self, t: float) -> bool:
        """The session was lost (LOST, or a new session id) before t (kazoo says LOST on stop too)."""
        return any(st == "LOST" and ts < t for ts, st in self.states) or \
            (self.zk.client_id or (None,))[0] != self.session_id

    def outage_ms(self, since: float, window_s: float = 3.0) -> float | None:
        """The longest gap between completed writes in [since, since + window_s] (the stop and what
        follows it; a shorter window lets less of the loaded machine's own hiccups in). None if
        writes did not resume within the window."""
        ts = [t for t in self.times if since - 0.05 <= t <= since + window_s]
        before = [t for t in self.times if t < since - 0.05]
        if before:
            ts.insert(0, before[-1])
        if len(ts) < 2 or ts[-1] < since:
            return None
        return max(b - a for a, b in zip(ts, ts[1:])) * 1000

    def wait_writes(self, n: int, timeout: float = 30.0) -> None:
        start = len(self.times)
        deadline = time.monotonic() + timeout
        while len(self.times) < start + n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"writes did not resume: {len(self.times) - start} in {timeout}s")
            time.sleep(0.01)


def stop_leader(ens, how: str, writer: Writer, after_s: float = 2.0) -> dict:
    """Stop the leader (`sigterm` or `kill9`) under the writer's load; measure; start it again."""
    leader = ens.leader()
    writer.wait_writes(50)
    time.sleep(0.5)
    t0 = time.monotonic()
    if how == "kill9":
        leader.kill()
    else:
        leader.stop()         # SIGTERM, then wait for the exit (stop_process)
    stopped_s = time.monotonic() - t0
    writer.wait_writes(50)
    time.sleep(after_s)
    out = writer.outage_ms(t0)
    leader.start()
    ens.wait_serving(wait=90)
    return {"how": how, "outage_ms": out, "exit_s": round(stopped_s, 3), "old_leader": leader.sid}


def measure(kind: str, trials: int, hows=("sigterm", "kill9"), workdir: Path | None = None) -> dict:
    from tests.support.ensemble import Ensemble
    tmp = Path(workdir or tempfile.mkdtemp(prefix=f"outage-{kind}-"))
    ens = Ensemble(tmp, 3, kind=kind)
    res: dict = {h: [] for h in hows}
    lost = {h: 0 for h in hows}
    try:
        ens.start()
        for _ in range(trials):
            for how in hows:           # interleaved: both see the same machine load
                leader = ens.wait_serving(wait=90)
                hosts = ens.connect_string([s for s in ens.members if s != leader])
                w = Writer(hosts).start()
                try:
                    r = stop_leader(ens, how, w)
                    lost[how] += int(w.lost_before(time.monotonic()))
                finally:
                    w.stop()
                res[how].append(r["outage_ms"])
    finally:
        ens.stop()
    return {h: {"trials_ms": [round(x, 1) if x is not None else None for x in v],
                "median_ms": round(statistics.median([x for x in v if x is not None]), 1)
                if any(x is not None for x in v) else None,
                "sessions_lost": lost[h]} for h, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--kinds", default="coord,zookeeper")
    a = ap.parse_args()
    out = {}
    for kind in a.kinds.split(","):
        out[kind] = measure(kind, a.trials)
        print(kind, json.dumps(out[kind]), flush=True)
    if "coord" in out and "zookeeper" in out:
        c, z = out["coord"]["sigterm"]["median_ms"], out["zookeeper"]["sigterm"]["median_ms"]
        if c is not None and z:
            print(f"coord SIGTERM / ZooKeeper SIGTERM = {c / z:.3f}")


if __name__ == "__main__":
    main()
