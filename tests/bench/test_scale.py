"""`coord bench-scale` scaled down (issue 17, "Scale"), the same harness on a 3-node coord ensemble and a
3-node real ZooKeeper 3.8 ensemble: sessions held with pings are never expired, one setData notifies
every watcher exactly once, and a wiped follower SNAP-synced from the leader holds what the leader holds.
The full-size run is the command (docs/benchmarks.md, "Scale")."""
import os

import pytest
from kazoo.client import KazooClient

from coord.bench import scale
from coord.bench.ensemble import LocalEnsemble
from tests.support.zk_observer import zk_tree_digest

CFG = scale.ScaleConfig(sessions=1_000, watches=10_000, znodes=20_000, hold_s=15.0, timeout_ms=12_000,
                        procs=4, light_rate=50.0, zk_heap_mb=1024, force_sync=False)


def test_bad_options_are_clear_errors():
    from click.testing import CliRunner
    from coord.cli import main
    for args, words in ((["--parts", "sessions,bogus"], "unknown part"), (["--systems", "etcd"], "systems must be"),
                        (["--sessions", "0"], "counts must be")):
        r = CliRunner().invoke(main, ["bench-scale", *args])
        assert r.exit_code == 2 and words in r.output, (args, r.output)


def test_nofile_past_the_hard_limit_is_a_clear_error():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard nofile limit here")
    try:
        scale._raise_nofile(hard + 1)
    except scale.BenchError as e:
        assert "hard nofile limit" in str(e)
    else:                                   # a root that may raise it: then it was raised
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= hard + 1
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # too many sessions for 3 members' sockets: said before any server starts, naming --members;
    # with enough members and holders the same count fits
    many = 3 * hard
    cfg = scale.ScaleConfig(watches=many, members=3, procs=many // (hard // 2), parts=("fanout",))
    try:
        scale.check_fds(cfg)
    except scale.BenchError as e:
        assert "--members" in str(e) and f"{many:,} sessions over 3 members" in str(e)
    else:
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= many // 3
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    scale.check_fds(scale.ScaleConfig(watches=many, members=6, procs=6 * 2, parts=("fanout",)))


def test_more_connections_to_a_member_than_source_ports_is_a_clear_error(monkeypatch, tmp_path):
    f = tmp_path / "range"
    f.write_text("60000\t60999\n")
    assert scale.local_port_range(str(f)) == (60000, 60999)
    monkeypatch.setattr(scale, "local_port_range", lambda: (60000, 60999))     # 1,000 source ports
    with pytest.raises(scale.BenchError, match=r"1,667 connections to one member's port.*ip_local_port_range"
                                               r" \(60000-60999\) has 1,000 source ports; use more --members"):
        scale.check_fds(scale.ScaleConfig(watches=5000, members=3, procs=4, parts=("fanout",)))
    scale.check_fds(scale.ScaleConfig(watches=5000, members=7, procs=4, parts=("fanout",)))


@pytest.fixture(params=scale.SYSTEMS)
def ensemble(request, tmp_path):
    ens = scale._ensemble(tmp_path, request.param, CFG, "t")
    try:
        yield ens
    finally:
        ens.stop()


@pytest.mark.slow
@pytest.mark.realzk
def test_sessions_held_and_watch_fanout(ensemble: LocalEnsemble):
    # 1,000 sessions held past their timeout (pings at 1/3 of it): none expired; one notification each
    held = scale.hold_sessions(ensemble, CFG.sessions, CFG.hold_s, CFG, "/scale-hot", print)
    assert held["connected"] == CFG.sessions, held
    assert held["timeouts_ms"] == [CFG.timeout_ms] and held["hold_s"] * 1000 > CFG.timeout_ms
    assert held["kept_alive"] == CFG.sessions, held       # the client's pings were never late
    assert held["false_expiries"] == 0 and held["lost"] == 0 and held["check_failed"] == 0, held
    assert held["notes_1"] == CFG.sessions and held["notes_0"] == held["notes_many"] == 0, held
    assert held["rss_after"] > 0 and held["connect_rate"] > 0 and held["members"] == 3
    assert held["pings"] >= CFG.sessions * 2, held          # hold_s covers >= 3 ping periods
    # what explains a loss is reported: CPU per session on both sides, handshake times, each holder's
    # longest stall (with the CPU it used in it), its niceness (-5 as root)
    assert held["server_cpu_ms_per_session"] > 0 and held["client_cpu_ms_per_session"] > 0, held
    assert 0 < held["handshake_s"][0] <= held["handshake_s"][2], held
    assert len(held["max_ping_turn_gaps"]) == CFG.procs and held["lost_timelines"] == [], held
    assert held["holder_nice"] == ([-5] if os.geteuid() == 0 else held["holder_nice"]), held
    # 10,000 watches on one znode (one per session), one setData: each delivered exactly once
    fan = scale.hold_sessions(ensemble, CFG.watches, 2.0, CFG, "/scale-fan", print)
    assert fan["connected"] == CFG.watches, fan
    assert fan["notes_1"] == CFG.watches and fan["notes_0"] == fan["notes_many"] == 0, fan
    assert fan["false_expiries"] == 0, fan
    assert 0 < fan["first_note_s"] <= fan["last_note_s"]


@pytest.mark.slow
@pytest.mark.realzk
def test_wiped_follower_snap_sync(ensemble: LocalEnsemble):
    out = scale.snap_trial(ensemble, CFG.znodes, CFG, print)
    assert out["follower_zxid"] == out["leader_zxid"], out
    # the root, /zookeeper (+ its config/quota children as each system has them), /snap, the light-load znode
    assert out["follower_znode_count"] == out["leader_znode_count"] >= CFG.znodes + 2, out
    assert out["samples_during"] > 0 and out["p99_during_ms"] is not None, out
    assert out["sync_s"] > 0
    # what the synced follower serves is the leader's tree, node for node (ZooKeeper's digest, as read)
    digests = []
    for sid in (out["leader"], out["follower"]):
        zk = KazooClient(hosts=f"127.0.0.1:{ensemble.client_port(sid)}", timeout=30)
        zk.start(timeout=60)
        try:
            digests.append(zk_tree_digest(zk))
        finally:
            zk.stop()
            zk.close()
    assert digests[0] == digests[1] and digests[0][1] >= CFG.znodes + 2, (digests, out)


def test_a_server_raises_its_soft_nofile_limit_to_the_hard_one():
    """What `coord serve` does at start (coord.aio.limits), seen from a child started with a low soft limit."""
    import resource
    import subprocess
    import sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    code = "from coord.aio.limits import raise_nofile_soft; import resource; raise_nofile_soft(); " \
           "print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    out = subprocess.run([sys.executable, "-c", code], preexec_fn=lower, capture_output=True, text=True, check=True)
    got_soft, got_hard = map(int, out.stdout.split())
    assert got_hard == hard and got_soft == hard if hard != resource.RLIM_INFINITY else got_soft >= low


def test_a_session_is_kept_alive_from_its_last_send_not_from_a_reply():
    """The holder's gap runs from the exists request it wrote after the ConnectResponse, so a holder
    late to ping after the reply is not counted as a server's false expiry."""
    import asyncio
    import time
    from coord.jute import records as R

    class Wire:                                  # what the holder wrote, as a socket would carry it
        def __init__(self):
            self.sent = []

        def write(self, b):
            self.sent.append(b)

    async def main():
        done = asyncio.get_running_loop().create_future()
        c = scale._Conn(scale._Holder("/p", 30_000), done, 0)
        c.connection_made(Wire())
        body = R.ConnectResponse(0, 30_000, 0x1234, bytes(16)).encode()
        t0 = time.monotonic()
        c.data_received(scale._LEN.pack(len(body)) + body)
        assert c.sid == 0x1234 and len(c.tr.sent) == 2 and c.last_ping >= t0   # the exists went out
        sent_at = c.last_ping
        await asyncio.sleep(0.05)
        reply = scale._HDR.pack(1, 5, 0) + R.Stat(*([0] * 11)).encode()
        c.data_received(scale._LEN.pack(len(reply)) + reply)
        assert done.done() and c.t_ready > sent_at and c.last_ping == sent_at

    asyncio.run(main())
