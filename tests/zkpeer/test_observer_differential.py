"""The project's differential scenarios and `coord compat` through observers: a coord observer and a real
ZooKeeper observer of the same real ZooKeeper 3.8 ensemble, side by side. Every request goes through an
observer (reads answered from its copy, writes, sessions and sync forwarded to the ZooKeeper leader,
watches fired from the txns it applies), so a difference is the coord observer's, not coord's own
server's (tests/compat runs the same scenarios against coord standalone)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kazoo.client import KazooClient

from tests.compat.conftest import SUPER_CRED, SUPER_DIGEST
from tests.compat.test_differential import run_seed
from tests.support.zk_observer import ObservedEnsemble

pytestmark = [pytest.mark.realzk, pytest.mark.slow]

COORD, ZOOKEEPER = 0, 1        # observer slots: server.4 is coord's, server.5 ZooKeeper's
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


class ObserverPair:
    """What run_seed needs: the targets, named as tests/compat's pair names them."""

    def __init__(self, obs: ObservedEnsemble):
        self.targets = [("zk", "127.0.0.1", obs.ports[ZOOKEEPER][2]), ("coord", "127.0.0.1", obs.ports[COORD][2])]


@pytest.fixture(scope="module")
def observers(tmp_path_factory):
    sup = {"DigestAuthenticationProvider.superDigest": SUPER_DIGEST}    # as tests/compat's servers
    obs = ObservedEnsemble(tmp_path_factory.mktemp("obsdiff"), "coord", observers=2, voter_cfg=sup,
                           observer_cfg=sup).start()
    try:
        obs.start_observer(wait=120, i=COORD, kind="coord")
        obs.start_observer(wait=120, i=ZOOKEEPER, kind="zookeeper")
        yield obs
    finally:
        obs.stop()


def _remove(host: str, port: int, root: str) -> None:
    zk = KazooClient(hosts=f"{host}:{port}", timeout=10)
    zk.start(timeout=30)
    try:
        zk.add_auth("digest", SUPER_CRED)     # the scenarios' ACLs shut out everyone else
        zk.delete(root, recursive=True)
    finally:
        zk.stop()
        zk.close()


# Known failure (session 6): real ZooKeeper 3.8's leader sends a tree digest its own servers do not
# reach after a create whose opcode and container flag disagree (createContainer with flags 0: seed 1,
# step 1; create with flags 4: seed 2 step 24, seed 3 step 48). ZooKeeper's observer logs "Digests are
# not matching" and goes on; coord's drops its copy, closes its clients and syncs again, so the
# scenario's sessions on the coord observer are lost. No real client sends such a create, but any
# client can. strict: this fails (XPASS) once the coord observer handles it, and the marker goes.
@pytest.mark.xfail(strict=True, reason="ZooKeeper's own digest disagrees after a create whose opcode and "
                   "container flag disagree; the coord observer re-syncs and drops its clients")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequences_through_observers(observers, seed):
    run_seed(ObserverPair(observers), seed, after_each=_remove)


def test_coord_compat_through_observers(observers):
    """`coord compat` (kazoo checks, zkCli.sh, cli_mt, the Java client) with the coord observer as
    the target and the ZooKeeper observer as the reference: every check agrees."""
    coord = f"127.0.0.1:{observers.ports[COORD][2]}"
    zk = f"127.0.0.1:{observers.ports[ZOOKEEPER][2]}"
    p = subprocess.run([sys.executable, "-m", "coord.cli", "compat", "--json", "--target", coord, "--reference", zk],
                       capture_output=True, text=True, cwd=ROOT, timeout=900)
    out = json.loads(p.stdout)
    failed = {k: v for k, v in out["checks"].items() if not v["pass"]}
    assert not failed, json.dumps(failed, indent=1, default=str)
    assert out["ok"] and p.returncode == 0
    assert {"multi", "watches", "java_client", "cli_mt", "zkcli"} <= set(out["checks"])
