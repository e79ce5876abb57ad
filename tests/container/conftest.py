"""`coord container-entrypoint` as a container runs it: a process whose environment holds the image's
variables (and nothing else of ours), its files in a temp dir standing in for the volumes."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.coord_server import ROOT, CoordProcess
from tests.support.real_zk import RealZooKeeper, four_letter


def image_env(extra: dict[str, str]) -> dict[str, str]:
    """The test runner's environment without any ZooKeeper-image variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ZOO_", "ZOOKEEPER_", "ALLOW_", "KAFKA_")) and k not in ("JVMFLAGS", "SERVER_JVMFLAGS")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run_entrypoint(env: dict[str, str], *args: str, python: str = sys.executable, timeout: float = 60,
                   **kw) -> subprocess.CompletedProcess:
    """Run the entrypoint to its end (for starts that are to fail, or commands other than serve)."""
    return subprocess.run([python, "-m", "coord.cli", "container-entrypoint", *args], env=image_env(env),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


class EntrypointProcess(CoordProcess):
    """A server started by the entrypoint from `env`, answering on `client_port` (which env must name)."""

    def __init__(self, workdir: Path, env: dict[str, str], client_port: int):
        super().__init__(workdir, client_port, env=env)

    def start(self, wait: float = 60.0) -> "EntrypointProcess":
        self.spawn()
        self.wait_imok(wait)
        return self

    def spawn(self) -> "EntrypointProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.workdir / "coord.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "coord.cli", "container-entrypoint"],
                                     env=image_env(self.extra_env), stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.workdir, start_new_session=True)
        return self

    def wait_imok(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"entrypoint exited with {self.proc.returncode}: {self.log_text()[-3000:]}")
            try:
                out = four_letter("127.0.0.1", self.client_port, "ruok", 1.0)
                if out == "imok" or "not in the whitelist" in out:   # serving (ruok may be off)
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"entrypoint's server on {self.connect_string} not serving after {wait}s: "
                           f"{self.log_text()[-3000:]}")


def wait_modes(members, wait: float = 60.0) -> list[str]:
    """Each member's `Mode:` once there is a leader and two followers (or whatever it is at `wait`)."""
    deadline = time.monotonic() + wait
    while True:
        modes = []
        for m in members:
            try:
                out = four_letter("127.0.0.1", m.client_port, "srvr", 1.0)
            except OSError:
                out = ""
            modes.append(next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Mode:")), ""))
        if sorted(modes) == ["follower", "follower", "leader"] or time.monotonic() > deadline:
            return modes
        time.sleep(0.2)


class ZooKeeperFromFile(RealZooKeeper):
    """Real ZooKeeper 3.8 started from a zoo.cfg someone else wrote (here: the entrypoint)."""

    def __init__(self, workdir: Path, cfg_path: Path, client_port: int, *, ensemble: bool = False):
        super().__init__(workdir, client_port)
        self.cfg_path = cfg_path
        if ensemble:   # start() then returns at once; wait_serving() once every member runs
            self.servers = {0: "unused:1:2"}

    def write_config(self) -> Path:
        super().write_config()          # only for its conf dir (logging config on the class path)
        return self.cfg_path
