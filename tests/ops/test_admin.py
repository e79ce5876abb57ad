"""AdminServer (coord.aio.admin), differential against real ZooKeeper 3.8's Jetty AdminServer.

One 3-server ensemble of each kind, AdminServer on, a client session with an ephemeral node and
watches on the leader: every 3.8 command and alias, on the leader and on a follower, must answer with
ZooKeeper's JSON shape (the same keys in the same order, the same value types, `"error" : null`
last; values may differ), and ZooKeeper's own answers re-printed by coord's Jackson-style printer
must be byte-identical to what Jetty sent. Then coord's /ready: 200 with a quorum, 503 without one
while ruok still answers.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from coord.aio.admin import Commands, pretty
from tests.ops.prom import PROVIDER, get, need, status, zk_prometheus_jars
from tests.support import real_zk
from tests.support.ensemble import Ensemble
from tests.support.real_zk import free_port

pytestmark = [pytest.mark.realzk]

# maps whose keys are data (session ids, paths, times, server ids, property names)
DATA_KEYED = {"expiry_time_to_session_ids", "session_id_to_ephemeral_paths", "session_id_to_watched_paths",
              "path_to_session_ids", "current_config", "system_properties"}
RUNTIME = ("jvm_", "process_", "python_", "coord_")
# ZooKeeper's labelled per-key summaries whose keys depend on sampling: ZooKeeper times ack_latency
# for every 1000th zxid only and learner_handler_qp_time_ms for marker packets only (coord has no
# learner queue to time: docs/operations.md). Their keyed samples are left out on both sides.
SAMPLED_SETS = ("learner_handler_qp_time_ms", "ack_latency")
# Objects Jackson makes from a Java bean's getters (ServerStats, MultipleAddresses) list them in the
# order the JVM gives, which differs between ZooKeeper 3.8 processes (seen: a standalone server and
# an ensemble's; a leader and a follower of one ensemble): compared by their keys, not their order
UNORDERED = {"server_stats", "quorum_address", "election_address"}
SEEN: dict[str, dict] = {}


def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if v in ("NaN", "Infinity", "-Infinity"):   # Jackson quotes non-finite doubles: a value, not a type
        return "float"
    return type(v).__name__


def diff_shape(a, b, where: str, out: list, keyed: bool = False) -> None:
    """Differences in shape between a (coord) and b (ZooKeeper): keys, their order, value types."""
    if isinstance(a, dict) and isinstance(b, dict):
        if keyed:
            ka = {_kind(x) for x in a.values()}
            kb = {_kind(x) for x in b.values()}
            if ka and kb and ka != kb:
                out.append(f"{where}: value types {ka} vs {kb}")
            return
        if (set(a) != set(b)) if where.rsplit(".", 1)[-1] in UNORDERED else (list(a) != list(b)):
            out.append(f"{where}: keys {list(a)} vs {list(b)}")
        for k in a:
            if k in b:
                diff_shape(a[k], b[k], f"{where}.{k}", out, k in DATA_KEYED)
    elif isinstance(a, list) and isinstance(b, list):
        if a and b:
            diff_shape(a[0], b[0], where + "[0]", out)
    elif _kind(a) != _kind(b) and not (a is None or b is None):
        out.append(f"{where}: {_kind(a)} {a!r} vs {_kind(b)} {b!r}")


def _fetch(port: int, name: str):
    raw = get(f"http://127.0.0.1:{port}/commands/{name}").decode()
    return raw, json.loads(raw)


def _collect(kind: str, tmp_path) -> dict:
    if kind == "zookeeper":
        need(real_zk.available(), "real ZooKeeper 3.8")
        jars = zk_prometheus_jars()
        need(bool(jars), "ZooKeeper's PrometheusMetricsProvider and servlet API jars")
    else:
        jars = []
    admin = {sid: free_port() for sid in (1, 2, 3)}
    ens = Ensemble(tmp_path / kind, 3, kind=kind, classpath=jars,
                   extra_cfg={"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1",
                              "metricsProvider.className": PROVIDER, "metricsProvider.httpHost": "127.0.0.1"},
                   member_cfg={sid: {"admin.serverPort": str(p), "metricsProvider.httpPort": str(free_port())}
                               for sid, p in admin.items()})
    ens.start()
    from kazoo.client import KazooClient
    zk = None
    try:
        leader = ens.leader()
        follower = ens.followers()[0]
        zk = KazooClient(hosts=leader.connect_string, timeout=20)
        zk.start(timeout=30)
        zk.create("/adm-e", b"x", ephemeral=True)
        zk.create("/adm-p", b"x")
        zk.get("/adm-p", watch=lambda e: None)
        zk.get_children("/", watch=lambda e: None)
        names = [n for p, aliases, _ in Commands.TABLE for n in (p, *aliases)]
        out = {"index": {}, "leader": {}, "follower": {}}
        for role, m in (("leader", leader), ("follower", follower)):
            out["index"][role] = get(f"http://127.0.0.1:{admin[m.sid]}/commands").decode()
            for n in names + ["no_such_command"]:
                if n in ("set_trace_mask", "stmk"):
                    n += "?traceMask=306"
                out[role][n] = _fetch(admin[m.sid], n)
        if kind == "coord":
            out["ready"] = _readiness(ens, admin)
        return out
    finally:
        if zk is not None:
            zk.stop()
            zk.close()
        ens.stop()


def _readiness(ens, admin) -> dict:
    """/ready on every member with a quorum; then two members killed: the last one answers 503 on
    /ready while /commands/ruok and the ruok word still answer."""
    res = {"with_quorum": {sid: status(f"http://127.0.0.1:{p}/ready") for sid, p in admin.items()}}
    last = ens.followers()[0]
    for m in ens.members.values():
        if m is not last:
            m.kill()
    deadline = time.monotonic() + 30
    code = 200
    while time.monotonic() < deadline and code == 200:
        code = status(f"http://127.0.0.1:{admin[last.sid]}/ready")
        time.sleep(0.2)
    res["without_quorum"] = code
    res["ruok_json"] = json.loads(get(f"http://127.0.0.1:{admin[last.sid]}/commands/ruok"))
    res["ruok_word"] = last.four("ruok")
    return res


@pytest.mark.parametrize("kind", ["zookeeper", "coord"])
def test_collect(kind, tmp_path):
    """Both AdminServers answer every command (the comparison is test_same_shapes_as_zookeeper)."""
    SEEN[kind] = _collect(kind, tmp_path)
    (tmp_path / "answers.json").write_text(json.dumps(SEEN[kind], indent=1))   # for a failure's reader
    for role in ("leader", "follower"):
        for name, (raw, body) in SEEN[kind][role].items():
            assert list(body)[-2:] in (["command", "error"], ["error", "command"]), (kind, role, name, raw)
    if kind == "coord":
        r = SEEN["coord"]["ready"]
        assert set(r["with_quorum"].values()) == {200}, r
        assert r["without_quorum"] == 503, r
        assert r["ruok_json"] == {"command": "ruok", "error": None} and r["ruok_word"] == "imok", r


def _need_both(tmp_path_factory):
    """Both kinds' answers: from test_collect on this worker, or collected here (xdist may have run
    test_collect on the other worker)."""
    for kind in ("zookeeper", "coord"):
        if kind not in SEEN:
            SEEN[kind] = _collect(kind, tmp_path_factory.mktemp(f"admin-{kind}"))


def _learner_key(k: str) -> str:
    """learner_handler_qp_size's key is a learner's sid: which sids those are depends on who leads."""
    return re.sub(r'key="\d+"', 'key="<learner sid>"', k) if k.startswith("learner_handler_qp_size") else k


def test_same_shapes_as_zookeeper(tmp_path_factory):
    _need_both(tmp_path_factory)
    problems = []
    for role in ("leader", "follower"):
        for name, (_, zk_body) in SEEN["zookeeper"][role].items():
            c_body = SEEN["coord"][role][name][1]
            if name in ("monitor", "mntr"):
                zk_keys = [_learner_key(k) for k in zk_body if not k.startswith(RUNTIME)
                           and not (k.startswith(SAMPLED_SETS) and "key=" in k)]
                c_keys = [_learner_key(k) for k in c_body if not k.startswith(RUNTIME)
                          and not (k.startswith(SAMPLED_SETS) and "key=" in k)]
                if set(zk_keys) != set(c_keys):
                    problems.append(f"{role} {name}: only coord {sorted(set(c_keys) - set(zk_keys))}, "
                                    f"only ZooKeeper {sorted(set(zk_keys) - set(c_keys))}")
                bad = [k for k in zk_keys if k in c_body and _kind(c_body[k]) != _kind(zk_body[k])]
                if bad:
                    problems.append(f"{role} {name}: types differ for {bad}")
                continue
            out: list = []
            diff_shape(c_body, zk_body, f"{role} {name}", out, name in ("system_properties", "sysp"))
            problems += out
    assert not problems, "\n".join(problems)


def test_printer_is_jacksons(tmp_path_factory):
    """ZooKeeper's own answers, parsed and printed again by coord's printer, are byte-identical."""
    _need_both(tmp_path_factory)
    for role in ("leader", "follower"):
        for name, (raw, body) in SEEN["zookeeper"][role].items():
            assert pretty(body) == raw, (role, name)


def test_index_is_zookeepers(tmp_path_factory):
    _need_both(tmp_path_factory)
    for role in ("leader", "follower"):
        assert SEEN["coord"]["index"][role] == SEEN["zookeeper"]["index"][role]
