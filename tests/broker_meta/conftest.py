"""Fixtures for broker_meta: one server per target per worker, a fresh chroot per test.

`zk_target` runs every flow against real Apache ZooKeeper 3.8 and, once the lead's standalone
server exists (tests.support.coord_server.start_coord), against coord as well: the same tests,
both must pass.
"""
from __future__ import annotations

import importlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from kazoo.client import KazooClient

from broker_meta.zkclient import ZkClient
from tests.support import real_zk

# Short ticks keep session expiry (2 x tickTime minimum) fast in tests.
TICK_MS = 500
SESSION_TIMEOUT_MS = 4000


def _coord_module():
    try:
        mod = importlib.import_module("tests.support.coord_server")
    except ImportError:
        return None
    return mod if hasattr(mod, "start_coord") else None


def _target_names() -> list[str]:
    names = ["zookeeper"]
    if _coord_module() is not None:
        names.append("coord")
    return names


@dataclass
class Target:
    name: str
    connect_string: str
    stop: Callable[[], None]
    handle: object


def pytest_collection_modifyitems(config, items):
    for item in items:
        cs = getattr(item, "callspec", None)
        if cs is not None and any(str(cs.params.get(k, "")).startswith("zookeeper")
                                  for k in ("zk_target", "failover_target")):
            item.add_marker(pytest.mark.realzk)


# 3-server ensembles (real ZooKeeper and coord, the same zoo.cfg values): short ticks, the limits of
# tests/support/ensemble.py; sessions up to 40 s so that brokers outlive an ensemble leader change
# with a margin for reconnecting on a loaded machine.
ENSEMBLE_CFG = {"tickTime": "200", "initLimit": "10", "syncLimit": "10", "maxSessionTimeout": "40000"}
ENSEMBLE_SESSION_MS = 20000  # sessions that must outlive an ensemble leader change


def start_target(name: str, workdir: Path) -> Target:
    """A server to run against: "zookeeper", "coord" (standalone), or a 3-server "zookeeper-ensemble"
    or "coord-ensemble" (connect string naming all three; the handle has .members and .leader())."""
    if name == "zookeeper-ensemble":
        if not real_zk.available():
            pytest.skip("real ZooKeeper 3.8 not installed")
        ens = real_zk.RealZooKeeperEnsemble(workdir, 3, extra_cfg=ENSEMBLE_CFG).start()
        return Target(name, ens.connect_string, ens.stop, ens)
    if name == "coord-ensemble":
        mod = _coord_module()
        if mod is None or not hasattr(mod, "start_coord_ensemble"):
            pytest.skip("no coord ensemble support (tests.support.coord_server.start_coord_ensemble)")
        ens = mod.start_coord_ensemble(workdir, 3, force_sync=False, tick_ms=200, init_limit=10, sync_limit=10,
                                       extra_cfg={"maxSessionTimeout": ENSEMBLE_CFG["maxSessionTimeout"]})
        return Target(name, ens.connect_string, ens.stop, ens)
    if name == "zookeeper":
        if not real_zk.available():
            pytest.skip("real ZooKeeper 3.8 not installed")
        zk = real_zk.RealZooKeeper(workdir, extra_cfg={"tickTime": str(TICK_MS)})
        zk.start()
        return Target(name, zk.connect_string, zk.stop, zk)
    mod = _coord_module()
    try:
        server = mod.start_coord(workdir, extra_cfg={"tickTime": str(TICK_MS)})
    except TypeError:  # the documented signature is start_coord(workdir)
        server = mod.start_coord(workdir)
    return Target(name, server.connect_string, server.stop, server)


@pytest.fixture(scope="session", params=_target_names())
def zk_target(request, tmp_path_factory):
    target = start_target(request.param, tmp_path_factory.mktemp(request.param))
    yield target
    target.stop()


class Clients:
    """Makes ZkClients on the test's chroot and closes them all at the end."""

    def __init__(self, target: Target, chroot: str):
        self.target = target
        self.chroot = chroot
        self.connect = target.connect_string + chroot
        self._made: list = []

    def new(self, session_timeout_ms: int = SESSION_TIMEOUT_MS, **kw) -> ZkClient:
        c = ZkClient(self.connect, session_timeout_ms=session_timeout_ms, connection_timeout_ms=15000, **kw).start()
        self._made.append(c)
        return c

    def raw(self, chroot: bool = True) -> KazooClient:
        k = KazooClient(hosts=self.connect if chroot else self.target.connect_string, timeout=10)
        k.start(timeout=15)
        self._made.append(k)
        return k

    def expire(self, client: ZkClient) -> None:
        """Expire a live session from the server side: a second handle on the same session id and
        password closes it, exactly as the Java client tests do."""
        sid, pwd = client.client_id
        other = KazooClient(hosts=self.target.connect_string, client_id=(sid, pwd), timeout=10)
        other.start(timeout=15)
        other.stop()
        other.close()

    def close_all(self) -> None:
        for c in reversed(self._made):
            try:
                if isinstance(c, ZkClient):
                    c.close()
                else:
                    c.stop()
                    c.close()
            except Exception:
                pass


@pytest.fixture
def zk_clients(zk_target):
    clients = Clients(zk_target, f"/bm-{uuid.uuid4().hex[:12]}")
    yield clients
    clients.close_all()


@pytest.fixture
def zk(zk_clients) -> ZkClient:
    return zk_clients.new()


def wait_until(pred: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
