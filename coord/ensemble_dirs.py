"""A member's directory under a `coord ensemble` root (`s<id>/` with its zoo.cfg and pid file), and
finding and stopping the server process that runs it. Shared by the foreground `coord ensemble`
(which stops members added later on Ctrl-C) and its `add` / `remove` subcommands."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PID_FILE = "coord.pid"


def member_dirs(root: Path) -> dict[int, Path]:
    return {int(d.name[1:]): d for d in root.glob("s*") if d.name[1:].isdigit() and (d / "zoo.cfg").exists()}



def server_pid(sdir: Path) -> int | None:
    """The pid of the `coord serve` running sdir/zoo.cfg: its pid file if it still names that
    process, else a search of the process list for the config path."""
    cfg = str((sdir / "zoo.cfg").resolve()).encode()

    def runs_cfg(pid: int) -> bool:
        try:
            return cfg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
    try:
        pid = int((sdir / PID_FILE).read_text())
        if runs_cfg(pid):
            return pid
    except (OSError, ValueError):
        pass
    for entry in os.listdir("/proc"):
        if entry.isdigit() and runs_cfg(int(entry)):
            return int(entry)
    return None


def stop_server(sdir: Path, timeout: float = 15.0) -> bool:
    pid = server_pid(sdir)
    (sdir / PID_FILE).unlink(missing_ok=True)   # first: the foreground `coord ensemble` reads it as "removed"
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        try:                         # reap it if it is our child (it is not, but be safe)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    return True
