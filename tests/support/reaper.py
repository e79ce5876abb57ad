"""The last line of defence against leaked processes: when a pytest process ends, every process it
started and that still runs (a server whose test failed before its teardown, a JVM a fixture lost track
of) is stopped, and named on stderr so the leaking test can be found and mended. Processes are found
through /proc (the parent chain), so whatever started them (Popen, asyncio, a tool) they are found."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def children_of() -> dict[int, list[int]]:
    """ppid -> pids, for every process /proc shows."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        out.setdefault(ppid, []).append(int(entry))
    return out


def descendants(pid: int) -> list[int]:
    tree = children_of()
    found, todo = [], list(tree.get(pid, ()))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(tree.get(p, ()))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def reap_descendants(root: int | None = None, grace_s: float = 10.0) -> list[str]:
    """SIGTERM every live descendant of root (default: this process), SIGKILL those that outlive
    grace_s; return what was found (one line each)."""
    pids = [p for p in descendants(os.getpid() if root is None else root) if Path(f"/proc/{p}").exists()]
    found = [f"{p}: {cmdline(p)[:200]}" for p in pids]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    for p in pids:
        while _alive(p) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
            killed = time.monotonic() + 2.0
            while _alive(p) and time.monotonic() < killed:
                time.sleep(0.01)
    for line in found:
        print(f"reaper: a test left process {line} running; stopped it", file=sys.stderr)
    return found


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):   # our own child: reap it
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"
