"""The interpreter a coord server runs on, and the GC policy that suits it.

A server is one event loop on one core, so its throughput is the interpreter's speed at the request
path (jute, prep, the tree). On PyPy's JIT that path runs 2-5x faster than on CPython (measured in
docs/benchmarks.md), so an environment may name a *server runtime*: `scripts/setup.sh` builds a PyPy
virtualenv beside the CPython one (which runs the tools, the tests and broker_meta) and records its
interpreter in the CPython venv's `coord-server-python` file. `coord serve` started from an
environment with such a runtime re-executes itself on it, in the same process (the pid does not
change, so supervisors and `kill` keep working), with the same arguments and the same source tree.

`COORD_SERVER_PYTHON` overrides the file: an interpreter path, or empty to serve on the interpreter
that was started. Without either, coord serves on the interpreter it was started with; every part of
coord runs on CPython 3.9+ and on PyPy 3.9+.
"""
from __future__ import annotations

import gc
import os
import platform
import sys
import time
from pathlib import Path

from coord.core.gcpause import cycle_collector_paused  # noqa: F401 (re-exported for the shell)

_IMPORTED = time.monotonic()

ENV = "COORD_SERVER_PYTHON"
RUNTIME_FILE = "coord-server-python"
_EXECED = "COORD_SERVER_RUNTIME_EXECED"  # set across the re-exec, so it happens at most once
EXECED_AT = "COORD_SERVER_RUNTIME_EXECED_AT"  # process_age_s() when it re-exec'd
# PyPy's GC settings for a server (each one an environment variable of PyPy's incminimark GC; one
# already in the environment wins). Measured in-process (coord.bench.core, 3 x 50,000 ops per phase,
# under SCHED_FIFO so that the machine's load does not stretch the pauses; docs/benchmarks.md,
# "GC configuration"):
# - PYPY_GC_NURSERY 4MB: a minor collection copies what survives of the nursery (under writes: every
#   new znode), so its pause grows with the nursery: p99 7-8 ms and max 13-14 ms at 64 MB, 1.3-2 ms
#   and ~2 ms at 8 MB, 0.7-1.5 ms at 4 MB (session 14), with CPU per op no worse. A major collection's
#   sweep step frees 3 x the nursery of arena pages, so it halves too (p50 3.1-3.5 -> 1.6-1.7 ms in
#   process; 8-15 ms on a server after a mass delete at 8 MB). On a server, two goal-run pairs had
#   70-95% fewer minor-collection stalls over 2 ms at 4 MB. The default, the L2 size (1 MB here),
#   costs the request path 20% of CPU (create 12.9 vs 10.8 us) for no shorter pause.
# - PYPY_GC_MIN 128MB: no major collection below this heap size; PyPy's default is 8 nurseries, which
#   at 64 MB was 512 MB: under create/delete churn RSS climbed ~25 MiB a round to ~640 MiB before the
#   first major collection freed anything (issue 17); with 128 MB it levels at ~250 MiB.
# - PYPY_GC_INCREMENT_STEP 1MB: what one incremental major-collection step marks (default: 2
#   nurseries). In process, steps of 4 MB: max 3-4 ms; of 16 MB: 9-13 ms. On a server (session 11,
#   docs/benchmarks.md): a step holds the interpreter lock, so the txn log's thread cannot hand in a
#   finished write until it ends; 1 MB against 4 MB took the gc-major stalls over 2 ms of the 60 s
#   setData goal run from 165-222 to 101-106 ms per 30 s round, and at 1M znodes (multi at
#   14,628/s) from 211 stalls / 1,481 ms / 28 over 10 ms to 101 / 347 ms / 2 (p99 213 -> 94 ms).
GC_ENV = {"PYPY_GC_NURSERY": "4MB", "PYPY_GC_MIN": "128MB", "PYPY_GC_INCREMENT_STEP": "1MB"}


# PyPy's JIT parameters for a server: PyPy's own unless COORD_JIT_PARAMS says (pypyjit.set_param's
# "name=value,..."; `coord bench --open-loop --coord-env COORD_JIT_PARAMS=decay=200` for an A/B).
# The candidate, measured but not the default (issue 17; docs/benchmarks.md, "Session 9"):
# - decay=200 (PyPy: 40). Every 32 minor collections, and each time a trace starts, the JIT's hotness
#   counters are multiplied by 1 - decay/1000, so a path too rare to reach its threshold (a loop 1039
#   runs, a function 1619 calls, a guard 200 failures) never compiles. With 40, paths running a few to
#   a few tens of times a second (the 50 ms session ticker, the stall monitor's attribution, metrics
#   branches, the event loop's rarer callbacks) crept up to it and were traced tens of seconds into a
#   steady load, a loop turn of 5-30 ms each. In the goal run's shape (setData at 17,652/s, 10 s
#   warm-up, then 110 s), medians of 3: 65 -> 27 compiles, 318 -> 68 ms of JIT time, 15 -> 1 jit
#   stalls of 10 ms or more after the warm-up. Why not the default yet: in coord.bench.core (the core
#   alone, in-process, steady state, 12 runs each on a loaded machine) create, getData, setData and
#   delete cost 4-45% more CPU per op (exists less): the traces are cut differently, not only rare
#   paths left out. The whole server's closed-loop CPU per op showed no difference beyond its noise;
#   what the server pays needs a quiet machine to settle. So the server applies it later, once the
#   JIT's compile storm is over (coord.aio.jitsettle), not here.
JIT_PARAMS = ""


def tune_jit() -> str:
    """Apply the server's JIT parameters (COORD_JIT_PARAMS, else JIT_PARAMS; PyPy only). Returns what
    was applied ("" for PyPy's defaults)."""
    if platform.python_implementation() != "PyPy":
        return ""
    params = os.environ.get("COORD_JIT_PARAMS", JIT_PARAMS).strip()
    if params and not set_jit_params(params):
        print(f"coord: COORD_JIT_PARAMS={params!r} is not a PyPy JIT parameter string (name=value,...); "
              f"using {JIT_PARAMS or 'PyPy defaults'}", file=sys.stderr)
        params = JIT_PARAMS
        if params:
            set_jit_params(params)
    return params


def jit_params_later() -> tuple[float, str] | None:
    """COORD_JIT_PARAMS_LATER="SECONDS:name=value,...": JIT parameters to apply that long after the
    server starts (run_node schedules it), or None. For an A/B of decay=200 set only after the first
    load's compile storm: in the goal run's shape "10:decay=200" (the switch 8 s into the open-loop
    warm-up, ~234 loops and bridges compiled by then) gave 12 and 21 compiles, 43 and 44 ms of JIT
    time and no jit stall of 10 ms or more after the warm-up (two runs; PyPy's defaults: 58-92
    compiles, 150-395 ms, 2-16 such stalls in three), and in coord.bench.core a switch after a
    first pass left the CPU per op as it was (minimum of 4 runs: create +4%, the others equal or
    less), where decay=200 from the start cost more. Not on by default: measured twice, and a server
    left idle past SECONDS meets its first load with the high decay."""
    raw = os.environ.get("COORD_JIT_PARAMS_LATER", "").strip()
    if not raw:
        return None
    at, _, params = raw.partition(":")
    try:
        seconds = float(at)
        if seconds < 0 or not params.strip():
            raise ValueError(raw)
    except ValueError:
        print(f"coord: COORD_JIT_PARAMS_LATER={raw!r} is not SECONDS:name=value,...; ignored", file=sys.stderr)
        return None
    return seconds, params.strip()


def set_jit_params(params: str) -> bool:
    """pypyjit.set_param(params) on PyPy; False on CPython or for a string PyPy refuses."""
    try:
        import pypyjit
        pypyjit.set_param(params)
    except (ImportError, ValueError):
        return False
    return True


def describe() -> str:
    """E.g. 'PyPy 7.3.11 (Python 3.9.16)' or 'CPython 3.11.7', for the start-up log line."""
    impl = platform.python_implementation()
    if impl == "PyPy":
        v = sys.pypy_version_info  # type: ignore[attr-defined]
        return f"PyPy {v.major}.{v.minor}.{v.micro} (Python {platform.python_version()})"
    return f"{impl} {platform.python_version()}"


def server_python() -> str | None:
    """The configured server interpreter, or None to serve on this one."""
    if ENV in os.environ:
        return os.environ[ENV] or None
    f = Path(sys.prefix) / RUNTIME_FILE
    try:
        path = f.read_text().strip()
    except OSError:
        return None
    return path or None


def exec_server_runtime(argv: list[str]) -> None:
    """Replace this process by `<server python> -m coord.cli <argv>` when a server runtime is
    configured, exists, and is not this interpreter; otherwise return and serve here."""
    target = server_python()
    if not target or os.environ.get(_EXECED):
        return
    if not os.access(target, os.X_OK):
        print(f"coord: server runtime {target} (from ${ENV} or {Path(sys.prefix) / RUNTIME_FILE}) is not "
              "an executable; serving on this interpreter", file=sys.stderr)
        return
    if os.path.abspath(target) == os.path.abspath(sys.executable):
        return
    env = dict(os.environ)
    env[_EXECED] = "1"
    env[EXECED_AT] = f"{process_age_s():.3f}"   # the start-up timeline's first step (zkobserver)
    # PyPy's GC settings (GC_ENV above); CPython ignores the variables.
    for k, v in GC_ENV.items():
        env.setdefault(k, v)
    src = str(Path(__file__).resolve().parents[1])  # the same coord source, whatever the runtime has installed
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(target, [target, "-m", "coord.cli", *argv], env)


# CPython's cycle collector: its full collections walk every tracked object, the whole tree included,
# each time the survivors of younger collections reach a quarter of it. While a tree grows (creates)
# that is a pause of tens of ms per 25% growth and ~5% of the CPU of a create, for nothing, since
# znodes form no cycles and the request path's short-lived cycles die in the young generations
# (measured: every collected object was found by generation 0). Younger collections run as before;
# the oldest generation is examined a hundredth as often. PyPy's incremental generational GC has no
# such knobs and needs none.
GC_THRESHOLDS = (1000, 20, 1000)


def tune_gc() -> None:
    if hasattr(gc, "set_threshold"):
        gc.set_threshold(*GC_THRESHOLDS)


# How long the event loop may keep the interpreter lock while another thread waits for it. The txn
# log's fsync thread needs the lock back after fdatasync returns to hand the batch's completion to the
# loop; with the default 5 ms a busy loop made every fsynced write wait up to 5 ms more (a PyPy
# thread doing fdatasync in a loop beside a busy main thread: 2,433-2,525 fsyncs in 2 s at 5 ms,
# 9,784-15,279 at 0.5 ms). COORD_SWITCH_INTERVAL_MS overrides (docs/benchmarks.md, "GIL hand-off").
SWITCH_INTERVAL_MS = 0.5


def tune_threads() -> float:
    """Set the interpreter's thread switch interval for a server; returns it in ms."""
    raw = os.environ.get("COORD_SWITCH_INTERVAL_MS")
    try:
        ms = float(raw) if raw else SWITCH_INTERVAL_MS
        if not 0 < ms <= 1000:
            raise ValueError(raw)
    except ValueError:
        print(f"coord: COORD_SWITCH_INTERVAL_MS={raw!r} is not a number of ms in (0, 1000]; using "
              f"{SWITCH_INTERVAL_MS}", file=sys.stderr)
        ms = SWITCH_INTERVAL_MS
    sys.setswitchinterval(ms / 1000.0)
    return ms


def freeze_gc() -> None:
    """Move every object alive now out of CPython's collections (a loaded tree; the parent of a forked
    snapshot, whose collections would otherwise write every old object's header and unshare its pages).
    PyPy has no gc.freeze: there this does nothing."""
    if hasattr(gc, "freeze"):
        gc.freeze()


def pause_major_gc() -> bool:
    """PyPy's analogue of freeze_gc for the parent of a forked snapshot: stop major-collection steps
    until resume_major_gc. Why: incminimark marks by writing a flag into every live object's header,
    so a major cycle running while the child lives copies (copy-on-write) nearly every page of the
    heap; at 1M znodes under 14,628 multis/s that was seconds of loop turns per snapshot and a p99 of
    0.8-1.9 s, against 56 ms with no snapshot in the run (docs/benchmarks.md, session 8). Minor
    collections go on. Call it between major cycles: a cycle stopped half-way makes every minor
    collection slower until it resumes. True if it paused (PyPy, and collections were on);
    CPython's collector is frozen instead (freeze_gc)."""
    if sys.implementation.name != "pypy" or not gc.isenabled():
        return False
    gc.disable()   # on PyPy: no major step, even of a cycle already marking, until gc.enable()
    return True


def resume_major_gc(paused: bool) -> None:
    if paused:
        gc.enable()


def process_age_s() -> float:
    """Seconds since this process started, by the kernel's clock (an exec'd server runtime's start
    includes the interpreter it replaced): the join timeline's origin. Where /proc cannot say, since
    this module was imported."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic() - _IMPORTED


def rss_mib() -> int:
    """This process's resident size in MiB (0 where /proc cannot say): `envi` and the huge-page floor."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    except (OSError, ValueError, IndexError):
        return 0


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the OS (glibc's malloc_trim). After recovery: PyPy frees
    the load's transient buffers (decompressed frames, dict and set storage outgrown while the tree
    grew) to malloc, which keeps them mapped: a recovered 1M-znode tree sat at 1.8 GB RSS with 0.6
    GB live, and 0.9-1.0 GB after the trim."""
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)
