"""A reconfig in flight when the leader is killed (-9): afterwards every member holds the same
/zookeeper/config, either the old one or the new one, never a mix; a restarted member recovers the
committed config (from its log, as no dynamic config file is named here)."""
from __future__ import annotations

import pytest

from tests.issue6.test_reconfig_grow_shrink import _configs, kill_leader_after_reconfig, reconfig_ensemble, super_client
from tests.support.ensemble import coord_ensemble_available


@pytest.mark.skipif(not coord_ensemble_available(), reason="no Zab peer")
def test_leader_killed_during_reconfig(tmp_path):
    ens = reconfig_ensemble(tmp_path)
    try:
        ens.start()
        outcomes = []
        for delay in (0.0, 0.01, 0.05):
            leader = ens.members[ens.wait_serving()]
            follower = next(m for m in ens.members.values() if m is not leader)
            sup = super_client(follower)
            old = sup.get("/zookeeper/config")[0]
            version = int(old.decode().rsplit("version=", 1)[1], 16)
            servers = old.decode().rsplit("\nversion=", 1)[0]
            line1 = servers.split("\n")[0]
            kill_leader_after_reconfig(sup, leader, delay, line1, None, version)
            ens.wait_serving(wait=60)
            configs = _configs(ens, ens.members)
            assert len(set(configs.values())) == 1, configs
            now = next(iter(configs.values())).decode()
            assert now.rsplit("\nversion=", 1)[0] == servers
            nv = int(now.rsplit("version=", 1)[1], 16)
            assert nv == version or nv > version
            outcomes.append("old" if nv == version else "new")
        print("outcomes", outcomes)
        # a full restart: every member recovers the same committed config from its log
        ens.restart_all(kill=True)
        configs = _configs(ens, ens.members)
        assert len(set(configs.values())) == 1, configs
    except Exception:
        print(ens.dump_logs())
        raise
    finally:
        ens.stop()
