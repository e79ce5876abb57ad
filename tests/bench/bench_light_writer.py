"""A light writer on a large ensemble, with every slow request matched to what its servers did then.

Issue 17: on a quiet machine, 3-node ensembles with 1M znodes and a one-request-at-a-time setData
client on the leader (bench-scale's snap part, "before the sync") had p99 27.4 ms on coord against
3.9 ms on ZooKeeper with p50s alike. This runs that load alone, one system after the other, same
harness (bench-scale's preload and its _LightLoad client), and for coord reads the stall monitor's
lines and the snapshot / huge-page / GC-pacer lines of all three members' logs (INFO level), so each
request over --slow-ms can be set against the member events that overlap it.

    .venv/bin/python -m tests.bench.bench_light_writer [--znodes 1000000] [--seconds 40] [--rate 200]
        [--settle 0] [--systems coord,zookeeper] [--coord-env KEY=VALUE ...] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

from coord.bench.churn import parse_env
from coord.bench.client import Session
from coord.bench.ensemble import LocalEnsemble
from coord.bench.scale import _LightLoad, load_znodes, pct

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+): (.*)$")
_STALL = re.compile(r"stall ([\d.]+) ms: ([\w-]+)(?: \((.*)\))?")
_SNAP = re.compile(r"snapshot \S+: .* in ([\d.]+)s \(forked child \d+: fork ([\d.]+) ms")
_HUGE = re.compile(r"huge pages: .* ([\d.]+)s$")


def _wall(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def member_events(log_path: Path, sid: int, role: str, t_lo: float, t_hi: float) -> list[dict]:
    """Windows [start, end] (wall clock) of the member's stalls, snapshots and huge-page passes that
    overlap [t_lo, t_hi]. A stall line is written at the end of its turn; the log's ms resolution
    is the matching's."""
    out = []
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        m = _LINE.match(line)
        if not m:
            continue
        end = _wall(m.group(1))
        name, msg = m.group(3), m.group(4)
        ev = None
        if name == "coord.stalls" and (s := _STALL.match(msg)):
            ms = float(s.group(1))
            ev = {"kind": "stall", "cause": s.group(2), "ms": ms, "start": end - ms / 1000, "detail": s.group(3) or ""}
        elif name == "coord.snapshots" and (s := _SNAP.search(msg)):
            ev = {"kind": "snapshot", "cause": "snapshot-child", "ms": float(s.group(1)) * 1000,
                  "start": end - float(s.group(1)), "detail": f"fork {s.group(2)} ms"}
        elif name == "coord.hugepages" and (s := _HUGE.search(msg)):
            ev = {"kind": "hugepages", "cause": "hugepage-pass", "ms": float(s.group(1)) * 1000,
                  "start": end - float(s.group(1)), "detail": msg[len("huge pages: "):]}
        elif name == "coord.gcpacer":
            ev = {"kind": "gc", "cause": "major-cycle-end", "ms": 0.0, "start": end, "detail": msg}
        if ev is None or end < t_lo or ev["start"] > t_hi:
            continue
        ev.update(end=end, member=sid, role=role)
        out.append(ev)
    return out


def attribute(samples: list[tuple[float, float]], events: list[dict], slow_s: float) -> list[dict]:
    """Each request of slow_s or more with the events overlapping it (a 1 ms margin each side: the
    log's resolution), longest first."""
    rows = []
    for t, lat in samples:
        if lat < slow_s:
            continue
        hits = [e for e in events if e["start"] <= t + lat + 0.001 and e["end"] >= t - 0.001 and e["kind"] != "gc"]
        rows.append({"t": t, "ms": round(lat * 1000, 2),
                     "events": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in e.items()
                                 if k in ("member", "role", "cause", "ms", "detail")} for e in hits]})
    return rows


def verdict(row: dict) -> str:
    """One cause for a slow request. A write waits for the leader's loop and for a quorum: two of the
    three members' acks (the leader's own log write is one). So the cause is the longest of: the
    leader's loop stalls, and the second-shortest of the three members' longest stall or fsync (one
    slow follower alone delays nothing). No stall: the background windows it fell in (a snapshot
    child's life, a huge-page pass), else 'none seen' (client, network, or a wait nothing measures)."""
    ev = [e for e in row["events"] if e["cause"] not in ("snapshot-child", "hugepage-pass")]
    lead_loop = [e for e in ev if e["role"] == "leader" and e["cause"] != "fsync"]
    per_member: dict[int, dict] = {}
    for e in ev:
        if e["member"] not in per_member or e["ms"] > per_member[e["member"]]["ms"]:
            per_member[e["member"]] = e
    acks = sorted(per_member.values(), key=lambda e: e["ms"])
    cand = []
    if lead_loop:
        cand.append(max(lead_loop, key=lambda e: e["ms"]))
    if len(acks) == 3:          # every member was slow: the second-slowest decides the quorum
        cand.append(acks[1])
    if cand:
        e = max(cand, key=lambda e: e["ms"])
        if e["ms"] >= row["ms"] / 4:
            return f"{e['cause']}@{e['role']}"
    bg = sorted({f"{e['cause']}@{e['role']}" for e in row["events"] if e not in ev})
    return "in " + "+".join(bg) if bg else "none seen"


def timeline(samples: list[tuple[float, float]], events: list[dict], step_s: float) -> list[dict]:
    """p50 / p99 / max per step_s of the run, with the background windows open in each step."""
    if not samples:
        return []
    t0 = samples[0][0]
    out = []
    k = 0
    while True:
        a, b = t0 + k * step_s, t0 + (k + 1) * step_s
        lats = [lat for t, lat in samples if a <= t < b]
        if not lats:
            break
        bg = sorted({f"{e['cause']}@{e['member']}" for e in events
                     if e["kind"] in ("snapshot", "hugepages") and e["start"] < b and e["end"] > a})
        out.append({"from_s": round(k * step_s, 1), "n": len(lats), "p50_ms": round(pct(lats, 0.5) * 1000, 2),
                    "p99_ms": round(pct(lats, 0.99) * 1000, 2), "max_ms": round(max(lats) * 1000, 2),
                    "over_10ms": sum(lat >= 0.01 for lat in lats), "background": bg})
        k += 1
    return out


def child_effect(events: list[dict], t_lo: float, t_hi: float) -> dict:
    """Per member: stalls of 10 ms or more per second while its own snapshot child lived, and
    otherwise, in [t_lo, t_hi] (does a member's own child slow its loop or its log?)."""
    out = {}
    for sid in sorted({e["member"] for e in events}):
        mine = [e for e in events if e["member"] == sid]
        kids = [(max(e["start"], t_lo), min(e["end"], t_hi)) for e in mine if e["kind"] == "snapshot"]
        kid_s = sum(max(0.0, b - a) for a, b in kids)
        other_s = max(1e-9, (t_hi - t_lo) - kid_s)
        row = {"role": mine[0]["role"], "child_s": round(kid_s, 1)}
        for cause in sorted({e["cause"] for e in mine if e["kind"] == "stall" and e["ms"] >= 10}):
            xs = [e for e in mine if e["kind"] == "stall" and e["cause"] == cause and e["ms"] >= 10
                  and t_lo <= e["end"] <= t_hi]
            inside = sum(any(a <= e["end"] <= b for a, b in kids) for e in xs)
            row[cause] = {"per_s_in_child": round(inside / kid_s, 2) if kid_s else None,
                          "per_s_otherwise": round((len(xs) - inside) / other_s, 2)}
        out[sid] = row
    return out


def run_one(engine: str, args, base: Path, log) -> dict:
    env_add = parse_env(args.coord_env) if engine == "coord" else {}
    saved = {k: os.environ.get(k) for k in env_add}
    os.environ.update(env_add)
    ens = LocalEnsemble(base / engine, 3, engine, force_sync=True, heap_mb=args.zk_heap_mb,
                        log_level="info" if engine == "coord" else "warning")
    if engine == "coord":
        for srv in ens.servers.values():
            with open(srv.config, "a") as f:
                f.writelines(line + "\n" for line in args.coord_cfg)
    try:
        leader = ens.start_all()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        lport = ens.client_port(leader)
        s = Session("127.0.0.1", lport)
        s.call("create", "/snap", b"")
        s.close()
        t0 = time.monotonic()
        load_znodes(lport, "/snap", args.znodes)
        log(f"{engine}: {args.znodes:,} znodes in {time.monotonic() - t0:.1f} s; settling {args.settle} s")
        time.sleep(args.settle)
        load = _LightLoad(lport, "/light", args.rate)
        offset = time.time() - time.monotonic()
        load.start()
        time.sleep(args.seconds)
        load.stop.set()
        load.join(60)
        samples = [(t + offset, lat) for t, lat in load.samples]
        lats = [lat for _, lat in samples]
        t_lo, t_hi = samples[0][0], samples[-1][0] + samples[-1][1]
        events = []
        if engine == "coord":
            for sid, srv in ens.servers.items():
                role = "leader" if sid == leader else "follower"
                events += member_events(srv.dir / "server.log", sid, role, t_lo - 1, t_hi + 1)
        slow = attribute(samples, events, args.slow_ms / 1000)
        causes: dict[str, int] = {}
        for r in slow:
            v = verdict(r)
            causes[v] = causes.get(v, 0) + 1
        stalls10 = {}
        for e in events:
            if e["kind"] == "stall" and e["ms"] >= 10:
                k = f"{e['cause']}@{e['role']}"
                stalls10[k] = stalls10.get(k, 0) + 1
        out = {"engine": engine, "znodes": args.znodes, "rate": args.rate, "seconds": args.seconds,
               "settle": args.settle, "requests": len(lats), "errors": load.errors,
               "p50_ms": round(pct(lats, 0.5) * 1000, 2), "p99_ms": round(pct(lats, 0.99) * 1000, 2),
               "max_ms": round(max(lats) * 1000, 2), f"over_{args.slow_ms:g}ms": len(slow),
               "slow_by_cause": causes, "timeline": timeline(samples, events, args.step),
               "own_child_effect": child_effect(events, t_lo, t_hi), "member_stalls_over_10ms": stalls10,
               "background": [{k: e[k] for k in ("member", "role", "cause", "ms", "detail")}
                              | {"at": round(e["start"] - t_lo, 2)}
                              for e in events if e["kind"] in ("snapshot", "hugepages", "gc")],
               "slow": [dict(r, t=round(r["t"] - t_lo, 3)) for r in sorted(slow, key=lambda r: -r["ms"])],
               "load_avg": os.getloadavg(), "env": env_add, "coord_cfg": args.coord_cfg if engine == "coord" else []}
        log(f"{engine}: {len(lats)} writes p50 {out['p50_ms']} p99 {out['p99_ms']} max {out['max_ms']} ms; "
            f"{len(slow)} over {args.slow_ms:g} ms by cause {causes}; member stalls >= 10 ms {stalls10}; "
            f"load {out['load_avg'][0]:.1f}")
        return out
    finally:
        ens.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--settle", type=float, default=0.0, help="seconds between the preload and the writer")
    ap.add_argument("--slow-ms", type=float, default=10.0)
    ap.add_argument("--step", type=float, default=5.0, help="seconds per row of the timeline")
    ap.add_argument("--coord-cfg", action="append", default=[], help="a zoo.cfg line for coord's servers")
    ap.add_argument("--systems", default="coord,zookeeper")
    ap.add_argument("--zk-heap-mb", type=int, default=3072)
    ap.add_argument("--coord-env", action="append", default=[])
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--workdir", default=None, help="keep the servers' dirs (logs) here")
    args = ap.parse_args()
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="coord-light-"))
    base.mkdir(parents=True, exist_ok=True)
    res = []
    try:
        for engine in args.systems.split(","):
            res.append(run_one(engine, args, base, lambda m: print(m, flush=True)))
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    text = json.dumps(res, indent=1)
    if args.json_path:
        Path(args.json_path).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
