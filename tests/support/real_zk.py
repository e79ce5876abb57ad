"""Start and stop the real Apache ZooKeeper 3.8 (Debian package `zookeeper`) for tests and benchmarks.

The reference for differential tests: the same zoo.cfg format coord reads, a JVM started with only the
config directory and zookeeper.jar on the class path (the jar's manifest brings its dependencies).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from coord.bench.launch import ZK_CONF_EXAMPLE, ZK_JAR, four_letter, free_port, zk_classpath  # noqa: F401  (re-exported)
from coord.bench.launch import stop_process
from coord.bench.launch import zookeeper_available as available  # noqa: F401

ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
CLI_MT = Path("/usr/lib/zookeeper/bin/cli_mt")
LOGBACK = """<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="CONSOLE"/></root>
</configuration>
"""


class RealZooKeeper:
    """One real ZooKeeper server process (standalone, or one member of an ensemble)."""

    def __init__(self, workdir: Path, client_port: int | None = None, *, force_sync: bool = False,
                 extra_cfg: dict[str, str] | None = None, myid: int | None = None,
                 servers: dict[int, str] | None = None, heap_mb: int = 512,
                 jvm_flags: list[str] | None = None, classpath: list[str] | None = None,
                 jars: list[str] | None = None):
        self.workdir = Path(workdir)
        self.jars = list(jars or [])            # instead of Debian's 3.8 (e.g. ZooKeeper 3.9 from Maven Central)
        self.classpath = list(classpath or [])  # jars after zookeeper.jar's (e.g. the Prometheus provider)
        self.client_port = client_port or free_port()
        self.force_sync = force_sync
        self.extra_cfg = dict(extra_cfg or {})
        self.myid = myid
        self.servers = servers or {}
        self.heap_mb = heap_mb
        self.jvm_flags = list(jvm_flags or [])  # e.g. -Dznode.container.checkIntervalMs=500
        self.proc: subprocess.Popen | None = None
        self.data_dir = self.workdir / "data"
        self.conf_dir = self.workdir / "conf"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        cfg = {
            "tickTime": "2000",
            "initLimit": "10",
            "syncLimit": "5",
            "dataDir": str(self.data_dir),
            "clientPort": str(self.client_port),
            "clientPortAddress": "127.0.0.1",
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            "maxClientCnxns": "0",
            "extendedTypesEnabled": "true",
            "forceSync": "yes" if self.force_sync else "no",
        }
        cfg.update(self.extra_cfg)
        lines = [f"{k}={v}" for k, v in cfg.items()]
        for sid, spec in sorted(self.servers.items()):
            lines.append(f"server.{sid}={spec}")
        if self.myid is not None:
            (self.data_dir / "myid").write_text(f"{self.myid}\n")
        path = self.conf_dir / "zoo.cfg"
        path.write_text("\n".join(lines) + "\n")
        log4j = ZK_CONF_EXAMPLE / "log4j.properties"
        if log4j.exists():
            shutil.copy(log4j, self.conf_dir / "log4j.properties")
        (self.conf_dir / "logback.xml").write_text(LOGBACK)   # ZooKeeper 3.9 logs through logback
        return path

    def start(self, wait: float = 60.0) -> "RealZooKeeper":
        if not self.jars and not available():
            raise RuntimeError("real ZooKeeper not installed: apt-get install zookeeper (scripts/setup.sh does)")
        cfg = self.write_config()
        env = dict(os.environ)
        env.pop("JAVA_TOOL_OPTIONS", None)
        self.log = open(self.workdir / "zookeeper.log", "ab")
        self.proc = subprocess.Popen(
            ["java", f"-Xmx{self.heap_mb}m", "-Dzookeeper.log.dir=" + str(self.workdir),
             "-Dzookeeper.root.logger=WARN,CONSOLE", "-Dzookeeper.extendedTypesEnabled=true",
             *self.jvm_flags,
             "-cp", ":".join([str(self.conf_dir), *self.jars] if self.jars else [zk_classpath(self.conf_dir)]
                             + self.classpath),
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if not self.servers:
            self.wait_serving(wait)
        return self

    def wait_serving(self, wait: float = 60.0) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.proc.returncode}; see {self.workdir}/zookeeper.log")
            try:
                out = four_letter(self.host, self.client_port, "srvr", 1.0)
                if "Mode:" in out:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"ZooKeeper on {self.connect_string} not serving after {wait}s")

    def mode(self) -> str:
        out = four_letter(self.host, self.client_port, "srvr")
        for line in out.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return "unknown"

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, signal.SIGKILL if kill else signal.SIGTERM)
        self.proc = None
        self.log.close()

    def __enter__(self) -> "RealZooKeeper":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RealZooKeeperEnsemble:
    """N real ZooKeeper servers on localhost, each with its own dir and ports."""

    def __init__(self, workdir: Path, n: int = 3, *, force_sync: bool = False, extra_cfg: dict | None = None,
                 extra_servers: dict[int, str] | None = None):
        """extra_servers: more server.N lines every member's zoo.cfg names (e.g. an observer's)."""
        self.workdir = Path(workdir)
        ports = [(free_port(), free_port(), free_port()) for _ in range(n)]
        servers = {i + 1: f"127.0.0.1:{q}:{e}" for i, (_, q, e) in enumerate(ports)}
        servers.update(extra_servers or {})
        self.servers = servers
        self.members = [
            RealZooKeeper(self.workdir / f"zk{i + 1}", ports[i][0], force_sync=force_sync,
                          extra_cfg=extra_cfg, myid=i + 1, servers=dict(servers))
            for i in range(n)
        ]

    @property
    def connect_string(self) -> str:
        return ",".join(m.connect_string for m in self.members)

    def start(self, wait: float = 90.0) -> "RealZooKeeperEnsemble":
        for m in self.members:
            m.start()
        for m in self.members:
            m.wait_serving(wait)
        return self

    def leader(self) -> RealZooKeeper:
        for m in self.members:
            if m.proc is not None and m.mode() == "leader":
                return m
        raise RuntimeError("no leader")

    def stop(self) -> None:
        for m in self.members:
            m.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
