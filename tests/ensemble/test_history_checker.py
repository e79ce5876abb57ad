"""The linearizability checker on hand-made histories, linearizable and not."""
from __future__ import annotations

import random

import pytest

from tests.support.history import INF, History, Op, check, check_key, lost_writes, monotonic_reads, zxid_order

K = "/k"


def op(client, kind, call, ret, status="ok", value=None, version=-1, result=None, error=None, key=K,
       czxid=None, mzxid=None, session=0):
    return Op(0, client, kind, key, value, version, call, INF if status == "info" else ret, status, result,
              error, czxid, mzxid, session)


def H(*ops):
    h = History()
    for o in ops:
        h.add(o)
    return h


def verdict(h, **kw):
    return check_key(h.ops, **kw).verdict


def test_sequential_history():
    h = H(op(1, "create", 0, 1, value=b"a"),
          op(1, "read", 2, 3, result=(b"a", 0)),
          op(2, "set", 4, 5, value=b"b", version=0, result=1),
          op(1, "set", 6, 7, "fail", value=b"c", version=0, error="BadVersion"),
          op(2, "read", 8, 9, result=(b"b", 1)),
          op(1, "create", 10, 11, "fail", value=b"x", error="NodeExists"),
          op(1, "delete", 12, 13, version=1),
          op(2, "read", 14, 15, "fail", error="NoNode"),
          op(2, "set", 16, 17, "fail", value=b"z", error="NoNode"))
    assert verdict(h) == "linearizable"


def test_concurrent_write_and_read_may_see_either():
    for seen in ((b"a", 0), (b"b", 1)):
        h = H(op(1, "create", 0, 1, value=b"a"),
              op(1, "set", 2, 10, value=b"b", version=0, result=1),
              op(2, "read", 3, 5, result=seen))
        assert verdict(h) == "linearizable"


def test_stale_read_after_write_completed_is_a_violation():
    h = H(op(1, "create", 0, 1, value=b"a"),
          op(1, "set", 2, 3, value=b"b", version=0, result=1),
          op(2, "read", 4, 5, result=(b"a", 0)))
    r = check_key(h.ops)
    assert r.verdict == "violation"
    assert "cannot place next" in r.detail and "read" in r.detail


def test_read_of_value_never_written_is_a_violation():
    h = H(op(1, "create", 0, 1, value=b"a"), op(2, "read", 0, 5, result=(b"zz", 0)))
    assert verdict(h) == "violation"


def test_two_successful_cas_from_same_version_is_a_violation():
    h = H(op(1, "create", 0, 1, value=b"a"),
          op(1, "set", 2, 6, value=b"b", version=0, result=1),
          op(2, "set", 3, 7, value=b"c", version=0, result=1))
    assert verdict(h) == "violation"
    # ... but one CAS succeeding and the other failing is fine either way round
    h = H(op(1, "create", 0, 1, value=b"a"),
          op(1, "set", 2, 6, value=b"b", version=0, result=1),
          op(2, "set", 3, 7, "fail", value=b"c", version=0, error="BadVersion"))
    assert verdict(h) == "linearizable"


def test_wrong_returned_version_is_a_violation():
    h = H(op(1, "create", 0, 1, value=b"a"), op(1, "set", 2, 3, value=b"b", result=5))
    assert verdict(h) == "violation"


def test_bad_version_error_when_version_matched_is_a_violation():
    h = H(op(1, "create", 0, 1, value=b"a"),
          op(1, "set", 2, 3, "fail", value=b"b", version=0, error="BadVersion"))
    assert verdict(h) == "violation"


def test_indeterminate_write_may_happen_late_or_never():
    # a create that timed out is seen long after it was issued
    h = H(op(1, "create", 0, None, "info", value=b"a"),
          op(2, "read", 5, 6, "fail", error="NoNode"),
          op(2, "read", 100, 101, result=(b"a", 0)))
    assert verdict(h) == "linearizable"
    # or never
    h = H(op(1, "create", 0, None, "info", value=b"a"), op(2, "read", 100, 101, "fail", error="NoNode"))
    assert verdict(h) == "linearizable"
    # but it cannot take effect twice
    h = H(op(1, "create", 0, None, "info", value=b"a"),
          op(2, "read", 5, 6, result=(b"a", 0)),
          op(2, "delete", 7, 8),
          op(2, "read", 9, 10, result=(b"a", 0)))
    assert verdict(h) == "violation"
    # nor before it was issued
    h = H(op(2, "read", 0, 1, result=(b"a", 0)), op(1, "create", 5, None, "info", value=b"a"))
    assert verdict(h) == "violation"


def test_lost_acknowledged_write():
    h = H(op(1, "create", 0, 1, value=b"a", czxid=0x100000001, mzxid=0x100000001),
          op(1, "set", 2, 3, value=b"b", version=0, result=1, czxid=0x100000001, mzxid=0x100000002),
          op("final", "read", 10, 11, result=(b"a", 0)))
    rep = check(h, final={K: (b"a", 0, 0x100000001)})
    assert not rep.ok
    assert rep.keys[0].verdict == "violation"
    assert len(rep.lost) == 1 and "version 1" in rep.lost[0]
    # the node vanished with no delete anywhere: lost too
    assert lost_writes(h.ops[:1], {K: None})
    # ... unless a delete might have removed it
    h2 = H(op(1, "create", 0, 1, value=b"a", czxid=5, mzxid=5), op(2, "delete", 0, None, "info"))
    assert lost_writes(h2.ops, {K: None}) == []


def test_zxid_order_and_duplicates():
    a = op(1, "set", 0, 1, value=b"a", result=1, czxid=1, mzxid=10, key="/a")
    b = op(2, "set", 2, 3, value=b"b", result=1, czxid=1, mzxid=9, key="/b")
    assert any("real-time order" in x for x in zxid_order([a, b]))
    c = op(2, "set", 0, 3, value=b"c", result=1, czxid=1, mzxid=10, key="/c")
    assert any("two acknowledged writes" in x for x in zxid_order([a, c]))
    d = op(2, "set", 0, 3, value=b"d", result=1, czxid=1, mzxid=9, key="/d")   # concurrent: fine
    assert zxid_order([a, d]) == []


def test_monotonic_reads_per_session():
    r1 = op(1, "read_local", 0, 1, result=(b"b", 1), mzxid=20, session=7)
    r2 = op(1, "read_local", 2, 3, result=(b"a", 0), mzxid=10, session=7)
    assert monotonic_reads([r1, r2])
    r2.session = 8                       # a new session may land on a server that is behind
    assert monotonic_reads([r1, r2]) == []


def test_local_reads_are_not_held_to_linearizability():
    h = H(op(1, "create", 0, 1, value=b"a", czxid=1, mzxid=1),
          op(1, "set", 2, 3, value=b"b", version=0, result=1, czxid=1, mzxid=2),
          op(2, "read_local", 4, 5, result=(b"a", 0), czxid=1, mzxid=1))
    assert check(h).ok


def _random_linearizable(rnd, n_clients=5, n_ops=60):
    """Run a real register with random overlapping intervals, each op taking effect at a point
    inside its interval; optionally turn some results into timeouts."""
    state = None
    events = []   # (linearization time, client, kind, args)
    t = 0
    ops = []
    busy = {c: 0 for c in range(n_clients)}
    for _ in range(n_ops):
        c = rnd.randrange(n_clients)
        call = max(busy[c], t) + rnd.randint(0, 3)
        point = call + rnd.randint(1, 10)
        ret = point + rnd.randint(1, 10)
        busy[c] = ret + 1
        t += rnd.randint(0, 4)
        kind = rnd.choice(["create", "set", "set", "delete", "read"])
        ver = rnd.choice([-1, 0, 1, 2]) if kind in ("set", "delete") else -1
        events.append((point, c, kind, ver, call, ret))
    events.sort()
    for i, (point, c, kind, ver, call, ret) in enumerate(events):
        val = f"v{i}".encode()
        o = op(c, kind, call, ret, value=val if kind in ("create", "set") else None, version=ver)
        present = state is not None
        if kind == "create":
            if present:
                o.status, o.error = "fail", "NodeExists"
            else:
                state = (val, 0)
        elif kind in ("set", "delete"):
            if not present:
                o.status, o.error = "fail", "NoNode"
            elif ver not in (-1, state[1]):
                o.status, o.error = "fail", "BadVersion"
            elif kind == "set":
                state = (val, state[1] + 1)
                o.result = state[1]
            else:
                state = None
        else:
            if present:
                o.result = state
            else:
                o.status, o.error = "fail", "NoNode"
        if kind != "read" and o.status == "ok" and rnd.random() < 0.1:
            o.status, o.ret = "info", INF
        ops.append(o)
    return ops


@pytest.mark.parametrize("seed", range(40))
def test_random_linearizable_histories_pass_and_mutations_fail(seed):
    rnd = random.Random(seed)
    ops = _random_linearizable(rnd)
    assert check_key(ops).verdict == "linearizable"
    reads = [o for o in ops if o.kind == "read" and o.status == "ok"]
    if reads:
        victim = rnd.choice(reads)
        victim.result = (b"never-written", victim.result[1])
        assert check_key(ops).verdict == "violation"


def test_search_bound_gives_unknown_not_pass():
    # many concurrent indeterminate creates/deletes and an impossible final read: exponential
    ops = [op(c, "create" if c % 2 else "delete", 0, None, "info", value=f"{c}".encode()) for c in range(24)]
    ops.append(op(99, "read", 50, 51, result=(b"nope", 0)))
    r = check_key(ops, max_states=500)
    assert r.verdict == "unknown"


# -- sequential appends ------------------------------------------------------------------------------
Q = "/q/a-"


def app(client, call, ret, seq, status="ok", zxid=None):
    path = f"/q/a-{seq:010d}" if status == "ok" else None
    return op(client, "append", call, ret, status, value=b"x", result=path, key=Q,
              czxid=zxid, mzxid=zxid, error=None if status == "ok" else "ConnectionLoss")


def _appends_ok():
    # 0 and 1 overlap (either order); 2 starts after both ended; an indeterminate one in between
    return [app(1, 0, 10, 1, zxid=0x101), app(2, 5, 12, 0, zxid=0x100), app(3, 11, INF, None, "info"),
            app(1, 20, 25, 3, zxid=0x103), app(2, 26, 30, 4, zxid=0x104)]


def test_sequential_appends_pass_and_join_zxid_order():
    ops = _appends_ok()
    present = {o.result for o in ops if o.status == "ok"} | {"/q/a-0000000002"}  # the info one landed
    rep = check(H(*ops), appended=present)
    assert rep.ok, rep.anomalies()
    assert rep.keys == []                          # appends are not in the per-path model


def test_duplicate_sequence_number_is_an_anomaly():
    ops = _appends_ok()
    ops[4] = app(2, 26, 30, 3, zxid=0x104)
    rep = check(H(*ops))
    assert not rep.ok and any("two acknowledged appends got 3" in a for a in rep.appends)


def test_lost_acknowledged_append_is_an_anomaly():
    ops = _appends_ok()
    present = {o.result for o in ops if o.status == "ok"} - {"/q/a-0000000003"}
    rep = check(H(*ops), appended=present)
    assert [a for a in rep.appends if "lost append" in a and "0000000003" in a], rep.appends


def test_append_out_of_real_time_order_is_an_anomaly():
    ops = _appends_ok()
    ops[3] = app(1, 20, 25, 5, zxid=0x103)         # finished before #4 (seq 4) began, yet larger
    rep = check(H(*ops), appended={o.result for o in ops if o.status == "ok"})
    assert [a for a in rep.appends if "out of real-time order" in a], rep.appends
    assert not rep.order                           # the zxids are in order: only the append check sees it


def test_append_zxids_are_in_the_zxid_order_check():
    ops = _appends_ok()
    ops[4] = app(2, 26, 30, 4, zxid=0x102)         # acknowledged after 0x103's append answered
    rep = check(H(*ops))
    assert rep.order and not rep.appends


def test_append_answered_with_another_requests_path_is_an_anomaly():
    """An append whose reply names a path that is not the parent's prefix plus a 10-digit counter is
    reported (seen once on ZooKeeper under a full disk), not a crash of the checker."""
    ops = _appends_ok()
    ops[4].result = "/k1"
    rep = check(H(*ops), appended={o.result for o in ops if o.status == "ok"})
    assert [a for a in rep.appends if "not a sequential name" in a and "'/k1'" in a], rep.appends
