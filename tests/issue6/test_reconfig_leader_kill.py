"""A reconfig in flight when the leader is killed (-9): afterwards every member holds the same
/zookeeper/config, either the old one or the new one, never a mix; a restarted member recovers the
committed config (from its log, as no dynamic config file is named here)."""
from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient

from coord.core.acl import digest_id
from tests.support.ensemble import Ensemble, coord_ensemble_available

SUPER = "super:superpw"


def _config_of(m) -> bytes:
    c = KazooClient(hosts=m.connect_string, timeout=10)
    c.start(timeout=30)
    try:
        c.sync("/zookeeper/config")
        return c.get("/zookeeper/config")[0]
    finally:
        c.stop()
        c.close()


@pytest.mark.skipif(not coord_ensemble_available(), reason="no Zab peer")
def test_leader_killed_during_reconfig(tmp_path):
    ens = Ensemble(tmp_path, 3, kind="coord", force_sync=False,
                   extra_cfg={"reconfigEnabled": "true",
                              "DigestAuthenticationProvider.superDigest": digest_id(SUPER)})
    try:
        ens.start()
        outcomes = []
        for delay in (0.0, 0.01, 0.05):
            leader = ens.members[ens.wait_serving()]
            follower = next(m for m in ens.members.values() if m is not leader)
            sup = KazooClient(hosts=follower.connect_string, timeout=10, auth_data=[("digest", SUPER)],
                              connection_retry={"max_tries": 0}, command_retry={"max_tries": 0})
            sup.start(timeout=30)
            old = sup.get("/zookeeper/config")[0]
            version = int(old.decode().rsplit("version=", 1)[1], 16)
            servers = old.decode().rsplit("\nversion=", 1)[0]
            line1 = servers.split("\n")[0]
            sup.reconfig_async(line1, None, None, version)
            time.sleep(delay)
            leader.kill()
            try:
                sup.stop()
                sup.close()
            except Exception:
                pass
            leader.start()
            ens.wait_serving(wait=60)
            configs = {m.sid: _config_of(m) for m in ens.members.values()}
            assert len(set(configs.values())) == 1, configs
            now = next(iter(configs.values())).decode()
            assert now.rsplit("\nversion=", 1)[0] == servers
            nv = int(now.rsplit("version=", 1)[1], 16)
            assert nv == version or nv > version
            outcomes.append("old" if nv == version else "new")
        print("outcomes", outcomes)
        # a full restart: every member recovers the same committed config from its log
        ens.restart_all(kill=True)
        configs = {m.sid: _config_of(m) for m in ens.members.values()}
        assert len(set(configs.values())) == 1, configs
    except Exception:
        print(ens.dump_logs())
        raise
    finally:
        ens.stop()
