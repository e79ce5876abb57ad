"""The server's JIT parameters (coord.runtime.tune_jit: COORD_JIT_PARAMS, else JIT_PARAMS) reach PyPy's
JIT. The candidate setting, decay=200, keeps a path that runs too rarely for its hotness counter to
outgrow the decay from ever compiling; with PyPy's default decay (40) the session ticker, the stall
monitor and the event loop's rarer callbacks crept up to their thresholds and were traced tens of
seconds into a steady load, each trace a loop turn of 5-30 ms (docs/benchmarks.md, "Session 9"). Run in
a PyPy child (the tests run on CPython, which has no JIT)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from coord import runtime
from tests.ops.test_gcpacer import ROOT, _runtime

PROBE = r"""
import gc, json
import pypyjit
from coord import runtime

applied = runtime.tune_jit()
compiled, minors, sink = [], [0], []

def on_compile(info):
    for op in info.operations:
        if isinstance(op, pypyjit.DebugMergePoint) and op.jitdriver_name == "pypyjit" and op.pycode.co_name == "rare":
            compiled.append(info.type)
            return

class Hooks:
    on_gc_collect = on_gc_collect_step = None
    def on_gc_minor(self, stats):
        minors[0] += stats.count

pypyjit.set_compile_hook(on_compile)
gc.hooks.set(Hooks())

def rare(x):
    return [x, x + 1]

def churn(n):
    for i in range(n):
        sink.append((i, i))       # escapes, so it is allocated: the nursery fills
    del sink[:]

out = 0
for i in range(2000 * 64):
    if i % 64 == 0:               # the rare branch: a bridge off this guard once it has failed 200 times
        out += len(rare(i))
        churn(20_000)             # ~1.6 minor collections (1 MB nursery) per run of the rare branch
print(json.dumps({"applied": applied, "compiled": compiled, "minors": minors[0]}))
"""


def _probe(jit_params: str | None) -> dict:
    exe = _runtime()
    env = {k: v for k, v in os.environ.items() if k != "COORD_JIT_PARAMS"}
    env.update({"PYTHONPATH": str(ROOT), "PYPY_GC_NURSERY": "1MB"})
    if jit_params is not None:
        env["COORD_JIT_PARAMS"] = jit_params
    out = subprocess.run([exe, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["minors"] >= 2000, r     # the churn really collected, ~20 failures of the guard per decay period
    return r


def test_pypy_default_decay_compiles_the_rare_path():
    # the control: the counter settles at 20 / 0.04 = 500 failures, over the 200 a bridge needs
    r = _probe("decay=40")
    assert r["applied"] == "decay=40"
    assert r["compiled"], r


def test_decay_200_keeps_the_rare_path_interpreted():
    # 20 / 0.2 = 100 failures at most: never the 200 a bridge needs
    r = _probe("decay=200")
    assert r["applied"] == "decay=200"
    assert r["compiled"] == [], r


def test_default_and_a_bad_value_apply_jit_params():
    assert _probe(None)["applied"] == runtime.JIT_PARAMS
    assert _probe("decay=fast")["applied"] == runtime.JIT_PARAMS


def test_tune_jit_is_nothing_on_cpython(monkeypatch):
    if sys.implementation.name != "pypy":
        monkeypatch.setenv("COORD_JIT_PARAMS", "decay=200")
        assert runtime.tune_jit() == ""


def test_jit_params_later_parsing(monkeypatch):
    monkeypatch.delenv("COORD_JIT_PARAMS_LATER", raising=False)
    assert runtime.jit_params_later() is None
    monkeypatch.setenv("COORD_JIT_PARAMS_LATER", "10:decay=200")
    assert runtime.jit_params_later() == (10.0, "decay=200")
    for bad in ("decay=200", "soon:decay=200", "5:", "-1:decay=200"):
        monkeypatch.setenv("COORD_JIT_PARAMS_LATER", bad)
        assert runtime.jit_params_later() is None, bad


def test_server_applies_jit_params_later(tmp_path):
    from tests.support.coord_server import CoordProcess
    from tests.support.kazoo_clients import connected
    with CoordProcess(tmp_path / "c", env={"COORD_JIT_PARAMS_LATER": "0.5:decay=200"}) as srv, \
            connected(srv.connect_string) as zk:
        zk.create("/j", b"1")
        srv.wait_for_log("JIT parameters decay=200 ")
        line = "JIT parameters decay=200 " + ("applied" if runtime.server_python() else "not applied")
        assert line in srv.log_text(), srv.log_text()[-2000:]
        assert zk.get("/j")[0] == b"1"
