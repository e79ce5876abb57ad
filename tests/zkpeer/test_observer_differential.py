"""The project's differential scenarios and `coord compat` through observers: a coord observer and a real
ZooKeeper observer, each of a real ZooKeeper 3.8 ensemble of its own, side by side. Every request goes through an
observer (reads answered from its copy, writes, sessions and sync forwarded to the ZooKeeper leader,
watches fired from the txns it applies), so a difference is the coord observer's, not coord's own
server's (tests/compat runs the same scenarios against coord standalone)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.compat.conftest import SUPER_DIGEST
from tests.compat.test_differential import run_seed
from tests.support.zk_observer import ObservedEnsemble

pytestmark = [pytest.mark.realzk, pytest.mark.slow]

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


class ObserverPair:
    """What run_seed needs: the targets, named as tests/compat's pair names them. Each observer has
    an ensemble of its own, so whole-tree answers (getAllChildrenNumber of the root) see only its
    own run, as with tests/compat's two standalone servers."""

    def __init__(self, coord: ObservedEnsemble, zookeeper: ObservedEnsemble):
        self.coord, self.zookeeper = coord, zookeeper
        self.targets = [("zk", "127.0.0.1", zookeeper.ports[0][2]), ("coord", "127.0.0.1", coord.ports[0][2])]


@pytest.fixture(scope="module")
def observers(tmp_path_factory):
    sup = {"DigestAuthenticationProvider.superDigest": SUPER_DIGEST}    # as tests/compat's servers
    made = []
    try:
        for kind in ("coord", "zookeeper"):
            obs = ObservedEnsemble(tmp_path_factory.mktemp(f"obsdiff-{kind}"), kind, voter_cfg=sup,
                                   observer_cfg=sup).start()
            made.append(obs)
            obs.start_observer(wait=120)
        yield ObserverPair(*made)
    finally:
        for obs in made:
            obs.stop()


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_random_sequences_through_observers(observers, seed):
    """Seeds 1-3 send creates whose opcode and container flag disagree (createContainer with flags
    0; create with flags 4): ZooKeeper's leader digests them with the flags' owner and its own
    observer logs "Digests are not matching"; the coord observer verifies them with that owner
    (coord.core.zkpeer.digest.owner_quirks) and keeps its copy and its clients."""
    run_seed(observers, seed)
    mntr = observers.coord.observer_mntr()
    assert mntr["zk_digest_mismatches_count"] == "0", mntr
    if seed == 1:
        assert int(mntr["zk_zkpeer_digest_owner_quirks"]) >= 1, mntr


def test_coord_compat_through_observers(observers):
    """`coord compat` (kazoo checks, zkCli.sh, cli_mt, the Java client) with the coord observer as
    the target and the ZooKeeper observer as the reference: every check agrees."""
    coord = f"127.0.0.1:{observers.coord.ports[0][2]}"
    zk = f"127.0.0.1:{observers.zookeeper.ports[0][2]}"
    p = subprocess.run([sys.executable, "-m", "coord.cli", "compat", "--json", "--target", coord, "--reference", zk],
                       capture_output=True, text=True, cwd=ROOT, timeout=900)
    out = json.loads(p.stdout)
    failed = {k: v for k, v in out["checks"].items() if not v["pass"]}
    assert not failed, json.dumps(failed, indent=1, default=str)
    assert out["ok"] and p.returncode == 0
    assert {"multi", "watches", "java_client", "cli_mt", "zkcli"} <= set(out["checks"])
