"""Dynamic membership in the pure core: joint quorums, the commit rule across a reconfig, what a peer
makes of reconfigs in its log, and whole membership changes in the simulator (grow 3->5, shrink 5->3
removing the leader, a swap by newMembers), with and without faults."""
from __future__ import annotations

import pytest

from coord.core.config import CoreConfig
from coord.core.server import ServerCore
from coord.core.zab import messages as M
from coord.core.zab.api import DurableState, ZabConfig
from coord.core.zab.membership import Membership, parse_config
from coord.core.zab.peer import QuorumPeer
from coord.core.zab.quorum import Joint, Quorum, commit_point
from coord.jute import records as R
from coord.sim.members import config_data
from coord.sim.world import SimOptions, World


def test_joint_quorum_needs_both_sides():
    j = Joint([Quorum({1, 2, 3}), Quorum({3, 4, 5})])
    assert j.voters == {1, 2, 3, 4, 5}
    assert not j.is_quorum({1, 2})            # old only
    assert not j.is_quorum({4, 5})            # new only
    assert j.is_quorum({2, 3, 4})
    assert j.is_quorum({1, 4, 5, 2})
    assert j.quorum_value({1: 9, 2: 9, 3: 5, 4: 7, 5: 1}) == 5


@pytest.mark.parametrize("acks,expect", [
    # voters 1,2,3 active; reconfig at zxid 10 adds 4,5 (new voters 1..5)
    ({1: 12, 2: 12, 3: 0, 4: 0, 5: 0}, 9),       # old quorum has 12, new only 2 of 5: stop before 10
    ({1: 12, 2: 12, 3: 0, 4: 12, 5: 0}, 12),     # both quorums hold 12
    ({1: 12, 2: 12, 3: 0, 4: 11, 5: 11}, 11),    # new quorum's value bounds it
    ({1: 8, 2: 3, 3: 0, 4: 12, 5: 12}, 3),       # before the reconfig only the old quorum matters
    ({1: 12}, None),                             # no old quorum reported
])
def test_commit_point_across_a_reconfig(acks, expect):
    old = Quorum({1, 2, 3})
    new = Quorum({1, 2, 3, 4, 5})
    assert commit_point(old, [(10, new)], acks) == expect


def _reconfig_entry(z, voters):
    return M.Entry(R.TxnHeader(0, 0, z, 0, 16), R.SetDataTxn("/zookeeper/config", config_data(voters, (), z), -1))


def test_membership_follows_the_log():
    m = Membership({1: None, 2: None, 3: None}, {})
    assert m.quorum.voters == {1, 2, 3} and m.version == 0
    assert m.logged([_reconfig_entry(0x100000005, [2, 3, 4])])
    assert isinstance(m.quorum, Joint) and m.quorum.voters == {1, 2, 3, 4}
    assert not m.quorum.is_quorum({3, 4}) and m.quorum.is_quorum({2, 3})
    m.truncated(0x100000004)                     # a TRUNC below it forgets it
    assert m.quorum is m.active and m.quorum.voters == {1, 2, 3}
    m.logged([_reconfig_entry(0x100000005, [2, 3, 4])])
    v, o, version = parse_config(config_data([2, 3, 4], (), 0x100000005))
    m.activate(v, o, version)                    # committed
    assert m.quorum is m.active and set(m.voters) == {2, 3, 4} and not m.pending
    m.logged([_reconfig_entry(0x100000003, [1])])  # older than the active one: ignored
    assert not m.pending


def _peer(sid, voters, config=None):
    core = ServerCore(CoreConfig(server_id=sid, tick_ms=100, config_data=config or b""))
    return QuorumPeer(sid, {v: None for v in voters}, {}, core, ZabConfig(tick_ms=100))


def test_a_restarted_member_with_a_logged_reconfig_uses_the_joint_quorum():
    p = _peer(1, [1, 2, 3])
    e = _reconfig_entry(0x100000002, [1, 4, 5])
    p.start(0, 0, DurableState(1, 1, log=[(e.hdr, e.txn)]))
    assert isinstance(p.quorum, Joint)
    assert p.election.quorum is p.quorum and p.quorum.voters == {1, 2, 3, 4, 5}
    assert {x[1] for x in p.drain_effects() if x[0] == "connect"} == {2, 3, 4, 5}


def test_a_looking_peer_adopts_a_newer_committed_configuration():
    p = _peer(3, [1, 2, 3])
    p.start(0, 0, DurableState())
    p.peer_connected(4)
    p.drain_effects()
    data = config_data([3, 4, 5], (), 0x200000001)
    p.message(4, M.encode(M.ConfigInfo(0x200000001, data), 0))
    eff = p.drain_effects()
    assert set(p.voters) == {3, 4, 5} and p.membership.version == 0x200000001
    assert any(x[0] == "config" for x in eff)
    assert p.state == "looking" and p.election.quorum.voters == {3, 4, 5}
    # an older one changes nothing
    p.message(4, M.encode(M.ConfigInfo(0x100000001, config_data([1, 2, 3], (), 0x100000001)), 1))
    assert set(p.voters) == {3, 4, 5}


def test_a_settled_peer_tells_a_looking_one_its_configuration_once_per_link():
    data = config_data([1, 2, 3], (), 0x100000004)
    p = _peer(1, [1, 2, 3], config=data)
    p.start(0, 0, DurableState())
    assert p.membership.version == 0x100000004
    p.peer_connected(2)
    p.drain_effects()
    n = M.Notification(M.LOOKING, 2, 0, 1, 0, 0)
    p.message(2, M.encode(n, 0))
    p.message(2, M.encode(n, 1))
    sent = [M.decode(x[2])[1] for x in p.drain_effects() if x[0] == "send"]
    infos = [m for m in sent if type(m) is M.ConfigInfo]
    assert len(infos) == 1 and infos[0].version == 0x100000004 and infos[0].data == data


# -- whole membership changes in the simulator ----------------------------------------------------

PLAN = (("add", [4, 5]), ("remove", ["leader", 1]), ("members", [2, 3, 4]), ("add", [5]),
        ("members", [3, 4, 5]))


def _run(seed, faults, plan=PLAN, steps=30000):
    w = World(SimOptions(seed=seed, nodes=3, steps=steps, reconfig=True, spares=2, faults=faults,
                         reconfig_plan=plan))
    roles: list[tuple[int, str]] = []
    w.checker.role = lambda node, name: roles.append((node.sid, name))
    r = w.run()
    return w, r, roles


def test_grow_shrink_swap_without_faults():
    w, r, roles = _run(7, faults=False)
    assert r.ok, r.message + "\n" + "\n".join(r.tail[-30:])
    seen = []
    for _, v in w.checker.configs:      # a reconfig resent after a lost reply commits again, unchanged
        if not seen or seen[-1] != sorted(v):
            seen.append(sorted(v))
    # 3 -> 5 -> 3 (the leader and one more removed) -> swap -> 4 -> 3
    assert seen[0] == [1, 2, 3] and seen[1] == [1, 2, 3, 4, 5]
    assert len(seen[2]) == 3 and 1 not in seen[2]
    assert seen[3:] == [[2, 3, 4], [2, 3, 4, 5], [3, 4, 5]]
    assert any(name == "removed" for _, name in roles), "a removed member must leave the ensemble"
    assert w.reconfigurer.committed_ops == len(PLAN)
    assert sorted(n.sid for n in w.members()) == [3, 4, 5]
    assert r.stats["acked_writes"] > 50


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_membership_changes_under_faults_keep_every_invariant(seed):
    """Crashes, partitions, lossy links and slow disks around the same plan: the checkers (one
    leader per epoch, committed-prefix agreement, durable on the quorums of the configuration in
    force, no acknowledged write lost) hold, and the ensemble converges afterwards."""
    w, r, _ = _run(seed, faults=True)
    assert r.ok, r.message + "\n" + "\n".join(r.tail[-30:])
    assert len(w.checker.configs) >= 2, "at least one membership change must commit under faults"
