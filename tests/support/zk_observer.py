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
    def __init__(self, workdir: Path, kind: str, *, voter_cfg: dict | None = None):
        assert kind in KINDS
        self.workdir = Path(workdir)
        self.kind = kind
        self.oq, self.oe, self.oc = free_port(), free_port(), free_port()
        self.observer_spec = f"127.0.0.1:{self.oq}:{self.oe}:observer;127.0.0.1:{self.oc}"
        self.voters = RealZooKeeperEnsemble(self.workdir, 3, extra_cfg=voter_cfg,
                                            extra_servers={4: self.observer_spec})
        self.observer = None

    @property
    def observer_connect(self) -> str:
        return f"127.0.0.1:{self.oc}"

    def start(self) -> "ObservedEnsemble":
        self.voters.start()
        return self

    def start_observer(self, wait: float = 60.0) -> None:
        if self.kind == "coord":
            cfg = {"tickTime": "2000", "initLimit": "10", "syncLimit": "5", "coord.peerProtocol": "zookeeper"}
            cfg.update({f"server.{sid}": spec for sid, spec in self.voters.servers.items()})
            obs = CoordProcess(self.workdir / "observer", self.oc, extra_cfg=cfg)
            obs.data_dir.mkdir(parents=True, exist_ok=True)
            (obs.data_dir / "myid").write_text("4\n")
            obs.start()
        else:
            obs = RealZooKeeper(self.workdir / "observer", self.oc, myid=4, servers=self.voters.servers,
                                extra_cfg={"peerType": "observer"})
            obs.start()
        self.observer = obs
        self.wait_observing(wait)

    def wait_observing(self, wait: float = 60.0) -> None:
        deadline = time.monotonic() + wait
        out = ""
        while time.monotonic() < deadline:
            try:
                out = four_letter("127.0.0.1", self.oc, "srvr", 1.0)
                if "Mode: observer" in out:
                    return
            except OSError as e:
                out = str(e)
            time.sleep(0.2)
        raise TimeoutError(f"{self.kind} observer not observing after {wait}s: {out!r}")

    def stop_observer(self, kill: bool = False) -> None:
        if self.observer is not None:
            self.observer.stop(kill=kill)
            self.observer = None

    def observer_mntr(self) -> dict[str, str]:
        out = four_letter("127.0.0.1", self.oc, "mntr", 2.0)
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def observer_log(self) -> str:
        name = "coord.log" if self.kind == "coord" else "zookeeper.log"
        p = self.workdir / "observer" / name
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        self.stop_observer()
        self.voters.stop()


def zk_tree_digest(client, root: str = "/") -> tuple[int, int]:
    """(ZooKeeper's tree digest, node count) of everything `client` reads under `root`."""
    total = 0
    count = 0
    stack = [root]
    while stack:
        path = stack.pop()
        data, st = client.get(path)
        children = client.get_children(path)
        count += 1
        if not path.startswith("/zookeeper/"):
            c = zlib.crc32(b"" if path == "/" else path.encode())
            c = zlib.crc32(data or b"", c)
            cversion = (st.cversion + st.numChildren) // 2    # back to the stored count of creations
            total += zlib.crc32(_STAT.pack(st.czxid, st.mzxid, st.pzxid, st.ctime, st.mtime, st.version,
                                           cversion, st.aversion, st.ephemeralOwner), c)
        stack.extend((path.rstrip("/") + "/" + ch) for ch in children)
    return total & ((1 << 64) - 1), count
