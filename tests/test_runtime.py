"""The server runtime (coord.runtime): `coord serve` re-executes itself on the interpreter the
environment names (PyPy after scripts/setup.sh), keeps its pid, and a data dir moves freely between
runtimes (a snapshot written under CPython's zstandard reads under PyPy's, and back)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from coord import runtime
from tests.support.coord_server import CoordProcess

CONFIGURED = runtime.server_python()
needs_runtime = pytest.mark.skipif(
    not CONFIGURED or not os.access(CONFIGURED, os.X_OK),
    reason="no server runtime configured for this environment (scripts/setup.sh sets up PyPy)")


def _runtime_line(srv: CoordProcess) -> str:
    lines = [ln for ln in srv.log_text().splitlines() if "runtime: " in ln]
    assert len(lines) == 1, srv.log_text()
    return lines[0].split("runtime: ", 1)[1]


def _exe(pid: int) -> str:
    return os.path.realpath(f"/proc/{pid}/exe")


@needs_runtime
def test_serve_reexecutes_on_the_configured_runtime_in_the_same_process(tmp_path):
    srv = CoordProcess(tmp_path / "s").start()
    try:
        # Popen's pid is the server: exec replaced the CPython that was started, it did not fork
        assert _exe(srv.proc.pid) == os.path.realpath(CONFIGURED)
        assert _exe(srv.proc.pid) != os.path.realpath(sys.executable)
        line = _runtime_line(srv)
        if "pypy" in os.path.realpath(CONFIGURED):
            assert line.startswith("PyPy "), line
        zk = KazooClient(srv.connect_string)
        zk.start(10)
        try:
            zk.create("/on-runtime", b"v")
            assert zk.get("/on-runtime")[0] == b"v"
        finally:
            zk.stop()
            zk.close()
    finally:
        srv.stop()


def test_empty_override_serves_on_the_interpreter_started(tmp_path):
    srv = CoordProcess(tmp_path / "s", env={runtime.ENV: ""}).start()
    try:
        assert _exe(srv.proc.pid) == os.path.realpath(sys.executable)
        assert _runtime_line(srv).startswith(runtime.describe().split(" ")[0])
    finally:
        srv.stop()


def test_a_missing_runtime_is_reported_and_the_server_still_serves(tmp_path):
    srv = CoordProcess(tmp_path / "s", env={runtime.ENV: str(tmp_path / "no-such-python")}).start()
    try:
        assert "no-such-python" in srv.log_text() and "is not an executable" in srv.log_text()
        assert _exe(srv.proc.pid) == os.path.realpath(sys.executable)
    finally:
        srv.stop()


@needs_runtime
def test_a_data_dir_moves_between_runtimes(tmp_path):
    """Snapshots (zstd-compressed) and logs written on one runtime load on the other, both ways."""
    work = tmp_path / "s"
    cfg = {"snapCount": "100"}  # several snapshots, so recovery starts from one
    here = {runtime.ENV: ""}
    expected: dict[str, bytes] = {}
    for step, env in enumerate([here, {}, here]):
        srv = CoordProcess(work, extra_cfg=cfg, env=env).start()
        try:
            zk = KazooClient(srv.connect_string)
            zk.start(10)
            try:
                for path, data in expected.items():
                    assert zk.get(path)[0] == data, (step, path)
                for i in range(300):
                    path = f"/r{step}/n{i}"
                    zk.create(path, f"{step}:{i}".encode() * 10, makepath=True)
                    expected[path] = f"{step}:{i}".encode() * 10
            finally:
                zk.stop()
                zk.close()
        finally:
            srv.stop()
        snaps = sorted((work / "data" / "version-2").glob("snapshot.*"))
        assert snaps, "the load should have taken snapshots"
    assert len(expected) == 900


def test_ci_serves_on_the_runtime_users_get():
    """CI must exercise the servers on the runtime scripts/setup.sh gives users, not fall back quietly."""
    if not os.environ.get("CI"):
        pytest.skip("not CI: a machine without PyPy serves on CPython")
    assert CONFIGURED and os.access(CONFIGURED, os.X_OK), \
        f"no server runtime in {Path(sys.prefix) / runtime.RUNTIME_FILE}: scripts/setup.sh should have built it"


def test_process_age_counts_from_the_process_start():
    """The join timeline's origin: a child started now is younger than this process, and its age
    includes its own interpreter's start (the kernel's start time, not an import's)."""
    import subprocess
    import time
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3); from coord import runtime; "
                          "print(runtime.process_age_s())"], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    child = float(out.stdout)
    assert 0.3 <= child <= time.monotonic() - t0 + 0.05       # clock ticks are 10 ms
    assert runtime.process_age_s() >= time.monotonic() - t0
