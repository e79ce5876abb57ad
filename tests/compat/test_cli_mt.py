"""cli_mt, the C client's shell from Debian's `zookeeper-bin`, against real ZooKeeper 3.8 and coord.

cli_mt answers asynchronously, so the driver sends one command at a time and waits for the output to
settle before the next; outputs are then compared after normalising zxids (by rank), times, session
ids, latencies, the C client's log lines and the order of sibling names (unspecified in ZooKeeper).
"""
from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

from tests.compat.conftest import wipe
from tests.support.real_zk import CLI_MT

pytestmark = pytest.mark.realzk

_ZX = re.compile(r"^(\s*)(czxid|mzxid|pzxid)=([0-9a-f]+)$")


class CliMt:
    def __init__(self, hostport: str, argv: list[str] | None = None):
        """cli_mt on hostport; `argv` replaces the whole command line (another build, TLS options)."""
        self.proc = subprocess.Popen(argv or [str(CLI_MT), hostport], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.last = time.monotonic()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for ln in self.proc.stdout:
            with self.lock:
                self.lines.append(ln.rstrip("\n"))
                self.last = time.monotonic()

    def settle(self, quiet=0.15, limit=5.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            with self.lock:
                idle = time.monotonic() - self.last
            if idle >= quiet:
                return
            time.sleep(0.02)

    def wait_for(self, text, limit=15.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            with self.lock:
                if any(text in ln for ln in self.lines):
                    return True
            time.sleep(0.02)
        return False

    def run(self, commands: list[str]) -> list[str]:
        assert self.wait_for("Got a new session id"), self.lines
        self.settle(0.2)
        for cmd in commands:
            # requests are answered in order on the one connection; only the printing interleaves
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
            time.sleep(0.02)
        self.settle(0.5, 15.0)
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        time.sleep(0.1)
        with self.lock:
            return list(self.lines)


def normalise(lines: list[str]) -> list[str]:
    body = [ln for ln in lines if "ZOO_" not in ln and not ln.startswith("time = ") and ln.strip()]
    zxids = sorted({int(m.group(3), 16) for ln in body if (m := _ZX.match(ln))})
    rank = {z: i for i, z in enumerate(zxids)}
    out = []
    for ln in body:
        if m := _ZX.match(ln):
            ln = f"{m.group(1)}{m.group(2)}=z{rank[int(m.group(3), 16)]}"
        elif re.match(r"^\s*(ctime|mtime)\s*=", ln):
            ln = ln.split("=")[0] + "= <time>"
        elif re.match(r"^(session Id = |Got a new session id: )", ln):
            ln = ln.split(":")[0].split("=")[0] + "<session>"
        elif (m := re.match(r"^(\s*)ephemeralOwner = ([0-9a-f]+)$", ln)) and int(m.group(2), 16):
            ln = f"{m.group(1)}ephemeralOwner = <session>"
        out.append(ln)
    # sibling names (tab-indented, no '=') come in the server's HashSet order: unspecified
    i = 0
    while i < len(out):
        if out[i].startswith("\t") and "=" not in out[i]:
            j = i
            while j < len(out) and out[j].startswith("\t") and "=" not in out[j]:
                j += 1
            out[i:j] = sorted(out[i:j])
            i = j
        else:
            i += 1
    return out


_RESULT = re.compile(r"^(\[/|/|Error|Watcher)")


def run_both(pair, commands):
    """cli_mt prints from two threads (commands, completions), so lines of neighbouring commands can
    interleave: compare the lines as a multiset, and the completions (one thread, request order)
    in order."""
    got = {name: normalise(CliMt(f"{host}:{port}").run(commands)) for name, host, port in pair.targets}
    zk, co = got["zk"], got["coord"]
    zr, cr = [ln for ln in zk if _RESULT.match(ln)], [ln for ln in co if _RESULT.match(ln)]
    if sorted(zk) != sorted(co) or zr != cr:
        import difflib
        pytest.fail("cli_mt output differs:\n" + "\n".join(
            difflib.unified_diff(zk, co, "zookeeper", "coord", lineterm="")), pytrace=False)
    return co


def test_cli_mt_commands(pair):
    wipe(pair, "/cm")   # fixed: the output names /cm and lists the root; clear what a failed attempt left
    out = run_both(pair, [
        "create /cm",
        "create +e /cm/e",
        "create +s /cm/s",
        "create +s /cm/s",
        "create +es /cm/es",
        "create2 /cm/c2",
        "create +c /cm/cont",
        "create +t=60000 /cm/ttl",
        "create /cm",
        "create /nope/child",
        "create +e /cm/e/child",
        "set /cm hello",
        "get /cm",
        "get /cm/c2",
        "ls /cm",
        "ls2 /cm",
        "exists /cm",
        "exists /nothere",
        "wexists /cm/later",
        "create /cm/later",
        "sync /cm",
        "delete /cm/c2",
        "delete /cm",
        "delete /cm/none",
        "get /none",
        "ls /none",
        "addauth digest u:p",
        "config",
        "aget /cm",
        "als /cm",
        "aexists /cm/e",
    ])
    text = "\n".join(out)
    assert "name = /cm/s0000000001" in text and "name = /cm/s0000000002" in text
    assert "name = /cm/es0000000003" in text
    assert "Error -101 for /nothere" in text
    assert "Watcher CREATED_EVENT state = CONNECTED_STATE for path /cm/later" in text
    assert "hello" in text
    # a second cli_mt, a new session: the first one's ephemerals are gone; clean up
    out = run_both(pair, [
        "ls /cm",
        "exists /cm/e",
        "get /cm/s0000000002",
        "delete /cm/s0000000001",
        "delete /cm/s0000000002",
        "delete /cm/cont",
        "delete /cm/ttl",
        "delete /cm/later",
        "delete /cm",
        "ls /",
    ])
    text = "\n".join(out)
    assert "Error -101 for /cm/e" in text and "\tzookeeper" in text and "\tcm" not in text
