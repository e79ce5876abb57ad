"""tests/bench/bench_light_writer.py's matching of slow writes to member events: log lines parsed
into windows, and the quorum rule (a write waits for the leader's loop and two of three acks)."""
from __future__ import annotations

from tests.bench.bench_light_writer import _wall, attribute, member_events, verdict

LOG = """\
2026-12-06 20:39:24,780 WARNING coord.stalls: stall 28.8 ms: gc-major (gc-minor 0.3 ms, gc-major 28.3 ms)
2026-12-06 20:39:25,000 INFO coord.stalls: stall 3.0 ms: fsync (txn log write+fdatasync)
2026-12-06 20:39:30,000 INFO coord.snapshots: snapshot snapshot.1000f455b: 1000006 nodes, 1 sessions in 13.47s (forked child 29431: fork 49.9 ms, capture 98.5 ms)
2026-12-06 20:39:31,000 INFO coord.hugepages: huge pages: 254 of 258 2 MiB ranges in huge pages, stopped, 30.47s
2026-12-06 20:39:32,000 INFO coord.server: closing connection 7
not a log line
"""


def test_log_lines_become_windows_that_end_at_the_line(tmp_path):
    p = tmp_path / "server.log"
    p.write_text(LOG)
    ev = member_events(p, 3, "leader", 0, 1e12)
    assert [(e["kind"], e["cause"]) for e in ev] == [("stall", "gc-major"), ("stall", "fsync"),
                                                      ("snapshot", "snapshot-child"), ("hugepages", "hugepage-pass")]
    end = _wall("2026-12-06 20:39:24,780")
    assert ev[0]["end"] == end and abs(ev[0]["start"] - (end - 0.0288)) < 1e-6
    assert abs(ev[2]["end"] - ev[2]["start"] - 13.47) < 1e-6 and ev[2]["detail"] == "fork 49.9 ms"
    assert member_events(p, 3, "leader", end + 100, end + 200) == []   # outside the window
    assert member_events(tmp_path / "missing.log", 1, "follower", 0, 1e12) == []


def _ev(member, role, cause, ms, start, kind="stall"):
    return {"kind": kind, "member": member, "role": role, "cause": cause, "ms": ms, "start": start,
            "end": start + ms / 1000, "detail": ""}


def test_one_slow_follower_delays_no_write_but_two_slow_members_do():
    samples = [(10.0, 0.030), (20.0, 0.030), (30.0, 0.030), (40.0, 0.001)]
    events = [_ev(1, "follower", "fsync", 29.0, 10.0),                                  # alone: no
              _ev(1, "follower", "fsync", 29.0, 20.0), _ev(2, "follower", "preempted", 25.0, 20.0),
              _ev(3, "leader", "fsync", 3.0, 20.0),                                     # all three: 2nd
              _ev(3, "leader", "gc-major", 28.0, 30.0),                                 # the leader's loop
              _ev(2, "follower", "hugepage-pass", 30000.0, 0.0, kind="hugepages")]
    rows = attribute(samples, events, 0.010)
    assert [r["t"] for r in rows] == [10.0, 20.0, 30.0]          # the 1 ms write is not slow
    assert [verdict(r) for r in rows] == ["in hugepage-pass@follower", "preempted@follower", "gc-major@leader"]
