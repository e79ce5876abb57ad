"""The reaper finds a process's descendants through /proc and stops them, SIGKILL for one that
ignores SIGTERM. (Run on a subtree of its own: this worker's session-scoped servers must live on.)"""
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.reaper import descendants, reap_descendants


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_leaked_grandchild_is_found_and_stopped():
    code = ("import subprocess,sys,time\n"
            "subprocess.Popen([sys.executable,'-c','import signal,time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
            "time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not descendants(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in descendants(os.getpid())
        [grandchild] = descendants(child.pid)
        time.sleep(0.5)   # let it install its SIGTERM handler
        found = reap_descendants(child.pid, grace_s=1.0)
        assert [line.split(":")[0] for line in found] == [str(grandchild)]
        assert _gone(grandchild)
    finally:
        child.kill()
        child.wait(5)
