"""Drive zkCli.sh (ZooKeeper's own Java client, Debian's `zookeeper` package) from tests.

`run_script` feeds a whole script on stdin and returns the output; `ZkCli` keeps one client running
so a test can act between commands (restart the server, cut the connection) and wait for output
such as watch events, which the Java client prints as `WatchedEvent state:... type:... path:...`.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time

from tests.support.real_zk import ZKCLI

_NOISE = ("SLF4J:", "log4j:", "Welcome to ZooKeeper!", "JLine support is", "Connecting to ")


def _env() -> dict:
    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)
    env["CLIENT_JVMFLAGS"] = "-Xshare:auto -XX:TieredStopAtLevel=1 -Xss512k"
    return env


def run_script(hostport: str, commands: list[str], timeout: float = 60.0) -> str:
    script = "\n".join(commands + ["quit"]) + "\n"
    p = subprocess.run([str(ZKCLI), "-server", hostport], input=script, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout, env=_env())
    return p.stdout


def strip_noise(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(_NOISE)]


class ZkCli:
    def __init__(self, hostport: str):
        self.proc = subprocess.Popen([str(ZKCLI), "-server", hostport], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     bufsize=1, env=_env())
        self.lines: list[str] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for ln in self.proc.stdout:
            with self.lock:
                self.lines.append(ln.rstrip("\n"))

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def output(self) -> list[str]:
        with self.lock:
            return list(self.lines)

    def wait_for(self, text: str, timeout: float = 30.0, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in ln for ln in self.output()) >= count:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        try:
            self.send("quit")
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait(5)
