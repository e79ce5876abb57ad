"""Ensembles of real server processes on localhost, for fault tests: coord, or real ZooKeeper 3.8.

Both kinds start from ZooKeeper's own zoo.cfg. Without the proxy, one identical zoo.cfg serves the
whole ensemble, as in production: `dataDir=data` is relative and each server runs in its own
directory (so its own `data/myid`), and each `server.N` line carries its client address
(`;127.0.0.1:port`). With `proxied=True` every peer link passes through a FaultProxy: server i's
zoo.cfg names, for every other server j, proxy ports that reach j's quorum and election ports, so the
test can partition, slow or reset any pair (tests/support/faultproxy.py).

Faults on processes: kill -9 (`kill`), SIGSTOP/SIGCONT (`pause`/`resume`), restart with the same
data (`start` after `kill`/`stop`), full restart (`restart_all`).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.real_zk import LOGBACK, ZK_CONF_EXAMPLE, four_letter, free_port, zk_classpath
from coord.bench.launch import stop_process

ROOT = Path(__file__).resolve().parents[2]


def _free_ports(n: int) -> list[int]:
    out: set[int] = set()
    while len(out) < n:
        out.add(free_port())
    return list(out)


class Member:
    def __init__(self, ens: "Ensemble", sid: int, client_port: int, quorum_port: int, election_port: int,
                 role: str = "participant"):
        self.ens = ens
        self.sid = sid
        self.client_port = client_port
        self.quorum_port = quorum_port
        self.election_port = election_port
        self.role = role
        self.dir = ens.workdir / f"s{sid}"
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.log_file = None

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def config_path(self) -> Path:
        own = self.ens.proxied or self.ens.member_cfg
        return (self.dir / "zoo.cfg") if own else (self.ens.workdir / "zoo.cfg")

    def start(self) -> "Member":
        assert not self.alive, f"server {self.sid} already running"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "myid").write_text(f"{self.sid}\n")
        self.log_file = open(self.dir / "server.log", "ab")
        cfg = str(self.config_path())
        if self.ens.kind == "coord":
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            if self.ens.server_jvmflags:
                env["SERVER_JVMFLAGS"] = " ".join(self.ens.server_jvmflags)
            cmd = [sys.executable, "-m", "coord.cli", "serve", "--config", cfg, "--log-level",
                   self.ens.log_level]
        else:
            env = dict(os.environ)
            env.pop("JAVA_TOOL_OPTIONS", None)
            conf = self.dir / "conf"
            conf.mkdir(exist_ok=True)
            if (ZK_CONF_EXAMPLE / "log4j.properties").exists():
                shutil.copy(ZK_CONF_EXAMPLE / "log4j.properties", conf / "log4j.properties")
            (conf / "logback.xml").write_text(LOGBACK)
            cmd = ["java", f"-Xmx{self.ens.heap_mb}m", f"-Dzookeeper.log.dir={self.dir}",
                   "-Dzookeeper.root.logger=INFO,CONSOLE", "-Dzookeeper.extendedTypesEnabled=true",
                   *self.ens.jvm_flags, *self.ens.server_jvmflags,
                   "-cp", ":".join([str(conf), *self.ens.jars] if self.ens.jars else
                                   [zk_classpath(conf), *self.ens.classpath]),
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.dir, start_new_session=True)
        self.paused = False
        return self

    def kill(self) -> None:
        """kill -9."""
        if self.proc is None:
            return
        if self.paused:
            self.proc.send_signal(signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        self.paused = False
        self.log_file.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False
        stop_process(self.proc)
        self.proc = None
        self.log_file.close()

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def four(self, word: str, timeout: float = 2.0) -> str:
        return four_letter("127.0.0.1", self.client_port, word, timeout)

    def mode(self) -> str | None:
        """leader | follower | observer | standalone; None when not serving or not answering."""
        if not self.alive or self.paused:
            return None
        try:
            out = self.four("srvr", 1.0)
        except OSError:
            return None
        for line in out.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def mntr(self) -> dict[str, str]:
        out = self.four("mntr")
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def log_text(self) -> str:
        try:
            return (self.dir / "server.log").read_text(errors="replace")
        except OSError:
            return ""


class Ensemble:
    def __init__(self, workdir: Path, n: int = 3, *, kind: str = "coord", proxied: bool = False,
                 observers: int = 0, tick_ms: int = 200, init_limit: int = 10, sync_limit: int = 10,
                 force_sync: bool = True, extra_cfg: dict | None = None, heap_mb: int = 256,
                 log_level: str = "info", jvm_flags: list[str] | None = None,
                 member_cfg: dict[int, dict] | None = None, classpath: list[str] | None = None,
                 server_jvmflags: list[str] | None = None, jars: list[str] | None = None):
        if kind not in ("coord", "zookeeper"):
            raise ValueError(kind)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.proxied = proxied
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.force_sync = force_sync
        self.extra_cfg = dict(extra_cfg or {})
        self.heap_mb = heap_mb
        self.log_level = log_level
        self.jvm_flags = list(jvm_flags or [])   # real ZooKeeper only, e.g. -Dreadonlymode.enabled=true
        self.classpath = list(classpath or [])   # real ZooKeeper only: jars after zookeeper.jar's
        self.jars = list(jars or [])             # real ZooKeeper only: instead of Debian's (e.g. 3.9's)
        # both kinds, as zkServer.sh passes them: the JVM's flags, coord's SERVER_JVMFLAGS (e.g. JAAS)
        self.server_jvmflags = list(server_jvmflags or [])
        # per-server zoo.cfg keys (e.g. each its own metrics port): then each server has its own file
        self.member_cfg = {sid: dict(c) for sid, c in (member_cfg or {}).items()}
        ports = _free_ports(3 * (n + observers))
        self.members: dict[int, Member] = {}
        for i in range(n + observers):
            sid = i + 1
            self.members[sid] = Member(self, sid, *ports[3 * i:3 * i + 3],
                                       role="observer" if i >= n else "participant")
        self.proxy = None
        if proxied:
            from tests.support.faultproxy import FaultProxy
            self.proxy = FaultProxy()
            self.routes: dict[tuple[int, int], tuple[int, int]] = {}
            for a in self.members:
                for b, mb in self.members.items():
                    if a != b:
                        self.routes[(a, b)] = (self.proxy.route(a, b, mb.quorum_port, name="quorum"),
                                               self.proxy.route(a, b, mb.election_port, name="election"))
        self.write_configs()

    # -- configuration -----------------------------------------------------------------------------
    def base_cfg(self) -> dict[str, str]:
        cfg = {
            "tickTime": str(self.tick_ms),
            "initLimit": str(self.init_limit),
            "syncLimit": str(self.sync_limit),
            "dataDir": "data",
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            "maxClientCnxns": "0",
            "extendedTypesEnabled": "true",
            "forceSync": "yes" if self.force_sync else "no",
            "standaloneEnabled": "false",
        }
        if self.kind == "zookeeper":
            cfg["reconfigEnabled"] = "false"
        cfg.update(self.extra_cfg)
        return cfg

    def server_lines(self, viewer: int | None) -> list[str]:
        lines = []
        for sid, m in sorted(self.members.items()):
            q, e = m.quorum_port, m.election_port
            if viewer is not None and viewer != sid:
                q, e = self.routes[(viewer, sid)]
            role = ":observer" if m.role == "observer" else ""
            lines.append(f"server.{sid}=127.0.0.1:{q}:{e}{role};127.0.0.1:{m.client_port}")
        return lines

    def write_configs(self) -> None:
        base = [f"{k}={v}" for k, v in self.base_cfg().items()]
        if not self.proxied and not self.member_cfg:
            (self.workdir / "zoo.cfg").write_text("\n".join(base + self.server_lines(None)) + "\n")
            return
        for sid, m in self.members.items():
            m.dir.mkdir(parents=True, exist_ok=True)
            extra = ["peerType=observer"] if m.role == "observer" else []
            extra += [f"{k}={v}" for k, v in self.member_cfg.get(sid, {}).items()]
            lines = self.server_lines(sid if self.proxied else None)
            (m.dir / "zoo.cfg").write_text("\n".join(base + extra + lines) + "\n")

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self, wait: float = 90.0) -> "Ensemble":
        for m in self.members.values():
            m.start()
        self.wait_serving(wait=wait)
        return self

    def stop(self) -> None:
        for m in self.members.values():
            try:
                m.stop()
            except Exception:
                pass
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None

    def restart_all(self, kill: bool = True, wait: float = 90.0) -> None:
        for m in self.members.values():
            m.kill() if kill else m.stop()
        for m in self.members.values():
            m.start()
        self.wait_serving(wait=wait)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- observation -------------------------------------------------------------------------------
    def modes(self) -> dict[int, str | None]:
        return {sid: m.mode() for sid, m in self.members.items()}

    def wait_serving(self, sids=None, wait: float = 60.0) -> int:
        """Until exactly one leader and every listed (default: running) server serves; the leader's sid."""
        deadline = time.monotonic() + wait
        modes = {}
        while time.monotonic() < deadline:
            want = [s for s in (sids or self.members) if self.members[s].alive and not self.members[s].paused]
            for s in want:
                m = self.members[s]
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"server {s} exited with {m.proc.returncode}:\n{m.log_text()[-3000:]}")
            modes = {s: self.members[s].mode() for s in want}
            leaders = [s for s, md in modes.items() if md == "leader"]
            if len(leaders) == 1 and all(md in ("leader", "follower", "observer") for md in modes.values()):
                return leaders[0]
            time.sleep(0.05)
        raise TimeoutError(f"ensemble not serving after {wait}s: modes {modes}")

    def leader(self, wait: float = 60.0) -> Member:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for m in self.members.values():
                if m.mode() == "leader":
                    return m
            time.sleep(0.05)
        raise TimeoutError(f"no leader after {wait}s: {self.modes()}")

    def followers(self) -> list[Member]:
        return [m for m in self.members.values() if m.mode() == "follower"]

    def connect_string(self, sids=None) -> str:
        return ",".join(self.members[s].connect_string for s in (sids or self.members))

    def prefer(self, sid: int) -> str:
        """A connect string that tries sid first, then the others (kazoo: randomize_hosts=False)."""
        return ",".join([self.members[sid].connect_string] +
                        [m.connect_string for s, m in self.members.items() if s != sid])

    def dump_logs(self, lines: int = 60) -> str:
        """The last interesting log lines of every server (client connection chatter left out)."""
        out = []
        for s, m in self.members.items():
            keep = [ln for ln in m.log_text().splitlines()
                    if "closing connection" not in ln and "expiring session" not in ln]
            out.append(f"--- server {s} ({self.kind}) ---\n" + "\n".join(keep[-lines:]))
        return "\n".join(out)


def coord_ensemble_available() -> bool:
    """True once coord can run as an ensemble member (the Zab peer has landed)."""
    try:
        import coord.core.zab.peer  # noqa: F401
        import coord.aio.ensemble_node  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.fixture(scope="module")
def coord_ensemble(tmp_path_factory):
    """A 3-node coord ensemble from one zoo.cfg; `.follower_hosts` connects to a follower only.
    Module-scoped: suites that use it should not depend on an empty tree."""
    if not coord_ensemble_available():
        pytest.skip("the Zab quorum peer (coord.core.zab.peer) has not landed yet")
    ens = Ensemble(tmp_path_factory.mktemp("coord-ensemble"), 3, kind="coord", force_sync=False)
    ens.start()
    leader = ens.wait_serving()
    follower = next(s for s in ens.members if s != leader)
    ens.follower_hosts = ens.members[follower].connect_string
    ens.leader_sid = leader
    try:
        yield ens
    finally:
        ens.stop()
