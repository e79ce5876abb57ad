"""A real 3-server ZooKeeper 3.8 ensemble whose zoo.cfg names one observer (server.4), and that
observer: coord (the same zoo.cfg plus coord.peerProtocol=zookeeper) or, as the reference, a real
ZooKeeper observer. The same scenarios run against both.

`zk_tree_digest` computes ZooKeeper's tree digest (DigestCalculator v2) from what a client reads,
so the observer's copy can be compared with the leader's whatever the observer is.
"""
from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

from tests.support.coord_server import CoordProcess
from tests.support.real_zk import RealZooKeeper, RealZooKeeperEnsemble, four_letter, free_port

KINDS = ("coord", "zookeeper")
_STAT = struct.Struct(">qqqqqiiiq")


class ObservedEnsemble:
    """Voters 1-3 (ZooKeeper) and observers 4.. (all coord, or all ZooKeeper); methods taking `i`
    address the i-th observer (0: the first)."""

    def __init__(self, workdir: Path, kind: str, *, observers: int = 1, voter_cfg: dict | None = None,
                 static_join: bool = True, observer_heap_mb: int = 512, observer_cfg: dict | None = None,
                 observer_jvm_flags: list[str] | None = None):
        """static_join=False: the voters' zoo.cfg do not name the observers (they join by reconfig)."""
        assert kind in KINDS
        self.workdir = Path(workdir)
        self.kind = kind
        self.ports = [(free_port(), free_port(), free_port()) for _ in range(observers)]
        self.observer_specs = {4 + i: f"127.0.0.1:{q}:{e}:observer;127.0.0.1:{c}"
                               for i, (q, e, c) in enumerate(self.ports)}
        self.voters = RealZooKeeperEnsemble(self.workdir, 3, extra_cfg=voter_cfg,
                                            extra_servers=self.observer_specs if static_join else None)
        if not static_join:
            self.voters.servers.update(self.observer_specs)   # what the observers' own zoo.cfg name
        self.observers: list = [None] * observers
        self.observer_heap_mb = observer_heap_mb     # a ZooKeeper observer's JVM heap
        self.observer_cfg = dict(observer_cfg or {})  # zoo.cfg keys the observers add (either kind)
        self.observer_jvm_flags = list(observer_jvm_flags or [])   # a ZooKeeper observer's -D flags

    @property
    def oc(self) -> int:
        return self.ports[0][2]

    @property
    def observer_connect(self) -> str:
        return f"127.0.0.1:{self.oc}"

    @property
    def observer_connects(self) -> str:
        return ",".join(f"127.0.0.1:{c}" for _, _, c in self.ports)

    @property
    def observer(self):
        return self.observers[0]

    def start(self) -> "ObservedEnsemble":
        self.voters.start()
        return self

    def coord_cfg(self) -> dict[str, str]:
        """The voters' zoo.cfg (their keys and server lines), plus the one key coord needs."""
        cfg = {"tickTime": "2000", "initLimit": "10", "syncLimit": "5", "coord.peerProtocol": "zookeeper"}
        cfg.update({f"server.{sid}": spec for sid, spec in self.voters.servers.items()})
        cfg.update(self.observer_cfg)
        return cfg

    def start_observer(self, wait: float = 60.0, i: int = 0, kind: str | None = None) -> None:
        """kind: this observer's, when it is not the ensemble's (a coord and a ZooKeeper observer of
        the same ensemble, side by side)."""
        sid = 4 + i
        d = self.workdir / ("observer" if i == 0 else f"observer{sid}")
        port = self.ports[i][2]
        if (kind or self.kind) == "coord":
            obs = CoordProcess(d, port, extra_cfg=self.coord_cfg())
            obs.data_dir.mkdir(parents=True, exist_ok=True)
            (obs.data_dir / "myid").write_text(f"{sid}\n")
            obs.start(wait)      # PyPy's start alone took over 20 s at load 45
        else:
            obs = RealZooKeeper(d, port, myid=sid, servers=self.voters.servers, extra_cfg={"peerType": "observer", **self.observer_cfg},
                                heap_mb=self.observer_heap_mb, jvm_flags=self.observer_jvm_flags)
            obs.start()
        self.observers[i] = obs
        self.wait_observing(wait, i)

    def wait_observing(self, wait: float = 60.0, i: int = 0) -> None:
        deadline = time.monotonic() + wait
        out = ""
        port = self.ports[i][2]
        while time.monotonic() < deadline:
            try:
                out = four_letter("127.0.0.1", port, "srvr", 1.0)
                if "Mode: observer" in out:
                    return
            except OSError as e:
                out = str(e)
            time.sleep(0.2)
        raise TimeoutError(f"{self.kind} observer {4 + i} not observing after {wait}s: {out!r}")

    def stop_observer(self, kill: bool = False, i: int = 0) -> None:
        if self.observers[i] is not None:
            self.observers[i].stop(kill=kill)
            self.observers[i] = None

    def observer_mntr(self, i: int = 0) -> dict[str, str]:
        out = four_letter("127.0.0.1", self.ports[i][2], "mntr", 2.0)
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def observer_log(self, i: int = 0) -> str:
        name = "coord.log" if self.kind == "coord" else "zookeeper.log"
        p = self.workdir / ("observer" if i == 0 else f"observer{4 + i}") / name
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        for i in range(len(self.observers)):
            self.stop_observer(i=i)
        self.voters.stop()


def zk_tree_digest(client, root: str = "/") -> tuple[int, int]:
    """(ZooKeeper's tree digest, node count) of everything `client` reads under `root`."""
    total = 0
    count = 0
    stack = [root]
    while stack:
        batch, stack = stack[-2048:], stack[:-2048]     # pipelined: a big tree reads in seconds
        asked = [(path, client.get_async(path), client.get_children_async(path)) for path in batch]
        for path, got, kids in asked:
            data, st = got.get()
            children = kids.get()
            count += 1
            if not path.startswith("/zookeeper/"):
                c = zlib.crc32(b"" if path == "/" else path.encode())
                c = zlib.crc32(data or b"", c)
                cversion = (st.cversion + st.numChildren) // 2    # back to the stored count of creations
                total += zlib.crc32(_STAT.pack(st.czxid, st.mzxid, st.pzxid, st.ctime, st.mtime, st.version,
                                               cversion, st.aversion, st.ephemeralOwner), c)
            stack.extend((path.rstrip("/") + "/" + ch) for ch in children)
    return total & ((1 << 64) - 1), count
