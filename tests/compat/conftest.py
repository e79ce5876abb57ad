"""Fixtures for the compatibility suite: real Apache ZooKeeper 3.8 and coord, side by side.

A `Pair` is one real ZooKeeper and one coord server started from the same zoo.cfg settings. Both
start in about a second, so modules share one pair (tests use their own subtrees) and tests that
need a special configuration start their own with `start_pair`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from coord.core.acl import digest_id
from tests.support.coord_server import CoordProcess
from tests.support.real_zk import RealZooKeeper

SUPER_CRED = "super:superpw"
SUPER_DIGEST = digest_id(SUPER_CRED)
# Containers and TTL nodes are reaped by a timer; the differential runs keep it out of the way.
NO_REAPER_MS = 3_600_000


class Pair:
    def __init__(self, zk: RealZooKeeper, coord: CoordProcess):
        self.zk = zk
        self.coord = coord

    @property
    def targets(self) -> list[tuple[str, str, int]]:
        return [("zk", "127.0.0.1", self.zk.client_port), ("coord", "127.0.0.1", self.coord.client_port)]

    @classmethod
    def started(cls, zk: RealZooKeeper, coord: CoordProcess, *, start_zk: bool = True) -> "Pair":
        """Both servers started (ZooKeeper first), or neither left running."""
        pair = cls(zk, coord)
        try:
            if start_zk:
                zk.start()
            coord.start()
        except Exception:
            pair.stop()
            raise
        return pair

    def stop(self) -> None:
        for s in (self.coord, self.zk):
            try:
                s.stop()
            except Exception:
                pass


def wipe(pair: Pair, path: str) -> None:
    """Remove what an earlier attempt of a test left under a fixed path on both servers (reruns
    share the module's servers), for tests whose output names the path or lists the root."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoNodeError
    for _, host, port in pair.targets:
        zk = KazooClient(f"{host}:{port}", auth_data=[("digest", SUPER_CRED)])
        zk.start(30)
        try:
            zk.delete(path, recursive=True)
        except NoNodeError:  # the usual case
            pass
        finally:
            zk.stop()
            zk.close()


def start_pair(workdir: Path, extra_cfg: dict | None = None, *, container_check_ms: int = NO_REAPER_MS,
               start_zk: bool = True) -> Pair:
    cfg = {"DigestAuthenticationProvider.superDigest": SUPER_DIGEST}
    cfg.update(extra_cfg or {})
    coord_cfg = dict(cfg, **{"znode.container.checkIntervalMs": str(container_check_ms)})
    zk = RealZooKeeper(Path(workdir) / "zk", extra_cfg=cfg,
                       jvm_flags=[f"-Dznode.container.checkIntervalMs={container_check_ms}"])
    coord = CoordProcess(Path(workdir) / "coord", extra_cfg=coord_cfg)
    return Pair.started(zk, coord, start_zk=start_zk)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    p = start_pair(tmp_path_factory.mktemp("pair"))
    yield p
    p.stop()


@pytest.fixture(scope="module")
def coord_shared(tmp_path_factory):
    """One coord server for a module's tests that need no reference server."""
    srv = CoordProcess(tmp_path_factory.mktemp("coord"),
                       extra_cfg={"DigestAuthenticationProvider.superDigest": SUPER_DIGEST})
    srv.start()
    yield srv
    srv.stop()
