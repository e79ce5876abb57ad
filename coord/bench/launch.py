"""Start and stop a coord server and a real Apache ZooKeeper 3.8 (Debian package `zookeeper`) as
local processes, for `coord bench --vs-zookeeper` (and for tests that want them from an installed
package rather than from tests/support).

Both are started from a zoo.cfg in their own work dir, on a free port of 127.0.0.1; ready means the
`srvr` four-letter word reports a Mode (ZooKeeper answers `ruok` before it serves). ZooKeeper's JVM gets only its config dir and zookeeper.jar on
the class path: the jar's manifest brings its own dependencies.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ZK_JAR = Path("/usr/share/java/zookeeper.jar")
ZK_CONF_EXAMPLE = Path("/etc/zookeeper/conf_example")


# zookeeper.jar finds slf4j-api but no binding on its own, so ZooKeeper logs nothing (slf4j's NOP
# logger) whatever log4j.properties says; Debian's zkServer.sh puts these on the classpath.
ZK_LOG_JARS = (Path("/usr/share/java/slf4j-log4j12.jar"), Path("/usr/share/java/log4j-1.2.jar"))
# Debian's zookeeper.jar manifest lists netty-handler but not netty-codec and netty-resolver, which
# it needs: without them the Netty connection factory (every TLS client port) fails each connection
# with NoClassDefFoundError io/netty/handler/codec/ByteToMessageDecoder.
ZK_NETTY_JARS = (Path("/usr/share/java/netty-codec.jar"), Path("/usr/share/java/netty-resolver.jar"))


def zk_classpath(conf) -> str:
    """conf (with log4j.properties), zookeeper.jar and, where installed, the slf4j -> log4j binding,
    so that a ZooKeeper started by the tests leaves a server log to read when it misbehaves."""
    return ":".join([str(conf), str(ZK_JAR), *(str(j) for j in ZK_LOG_JARS + ZK_NETTY_JARS if j.exists())])


def zookeeper_available() -> bool:
    return ZK_JAR.exists() and shutil.which("java") is not None


# With these JVM flags ZooKeeper writes down its own stalls, for coord.bench.tailcause.read_zookeeper:
# every txn-log fsync of 2 ms or more (FileTxnLog's warning: whole ms over a threshold that defaults
# to 1 s) in its server log, and every stop-the-world pause (GC or other safepoint) in SAFEPOINT_LOG.
SAFEPOINT_LOG = "safepoint.log"


def zookeeper_trace_flags(workdir: Path, fsync_over_ms: int = 1) -> list[str]:
    return [f"-Dzookeeper.fsync.warningthresholdms={fsync_over_ms}",
            f"-Xlog:safepoint:file={Path(workdir) / SAFEPOINT_LOG}:time"]


def zookeeper_trace_files(servers: list[tuple[Path, Path]]) -> tuple[list[Path], list[Path]]:
    """(server logs, safepoint logs) of servers given as (workdir, server log) traced with
    zookeeper_trace_flags(workdir): the arguments of tailcause.read_zookeeper."""
    return [log for _, log in servers], [Path(d) / SAFEPOINT_LOG for d, _ in servers]


def zookeeper_command(conf: Path, cfg: Path, log_dir: Path, heap_mb: int, jvm_flags=()) -> list[str]:
    """QuorumPeerMain on cfg, logging at WARN to the console (the caller's log file), with conf's
    log4j.properties copied from Debian's example."""
    conf.mkdir(parents=True, exist_ok=True)
    if (ZK_CONF_EXAMPLE / "log4j.properties").exists():
        shutil.copy(ZK_CONF_EXAMPLE / "log4j.properties", conf / "log4j.properties")
    return ["java", f"-Xmx{heap_mb}m", f"-Xms{heap_mb}m", *jvm_flags, f"-Dzookeeper.log.dir={log_dir}",
            "-Dzookeeper.root.logger=WARN,CONSOLE", "-cp", zk_classpath(conf),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")



def rss_mib(pids) -> float:
    """Resident size in MiB of local processes together (/proc/<pid>/statm; a process gone counts 0)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    return total / (1 << 20)


def thread_cpu(pids) -> dict:
    """{(pid, tid): (user s, system s)} of every thread of local processes (/proc/PID/task/*/stat;
    a thread or process gone is left out). Two readings give each thread's share of a run, where
    one whole-process figure would hide that coord's work is one loop thread and ZooKeeper's is
    spread over many."""
    tck = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[(pid, int(tid))] = (int(fields[11]) / tck, int(fields[12]) / tck)
            except (OSError, ValueError, IndexError):
                pass
    return out


def cpu_per_op(before: dict, after: dict, ops: int) -> dict:
    """Server CPU per op in us between two thread_cpu readings: user, system, and the busiest thread's."""
    if ops <= 0:
        return {}
    deltas = [(u - before.get(k, (0.0, 0.0))[0], st - before.get(k, (0.0, 0.0))[1]) for k, (u, st) in after.items()]
    per = 1e6 / ops
    return {"user": round(sum(u for u, _ in deltas) * per, 1), "sys": round(sum(st for _, st in deltas) * per, 1),
            "busiest_thread": round(max((u + st for u, st in deltas), default=0.0) * per, 1)}


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace_s: float = 15.0) -> None:
    """Send sig to a server process still running and reap it; SIGKILL if it outlives grace_s."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)

class _Process:
    name = "server"
    log_name = "server.log"

    def __init__(self, workdir: Path, client_port: int | None = None, *, force_sync: bool = False,
                 extra_cfg: dict[str, str] | None = None, extra_env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.extra_env = dict(extra_env or {})
        self.client_port = client_port or free_port()
        self.force_sync = force_sync
        self.extra_cfg = dict(extra_cfg or {})
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    connect_string = target

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _base_cfg(self) -> dict[str, str]:
        return {
            "tickTime": "2000",
            "dataDir": str(self.data_dir),
            "clientPort": str(self.client_port),
            "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": "0",
            "4lw.commands.whitelist": "*",
            "forceSync": "yes" if self.force_sync else "no",
        }

    def _write_cfg(self, path: Path, extra: dict[str, str]) -> Path:
        cfg = self._base_cfg()
        cfg.update(extra)
        cfg.update(self.extra_cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
        return path

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, wait: float = 60.0) -> "_Process":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = self._command()
        self._log = open(self.workdir / self.log_name, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env={**self._env(), **self.extra_env},
                                     cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see "
                                   f"{self.workdir / self.log_name}")
            try:
                if "Mode:" in four_letter("127.0.0.1", self.client_port, "srvr", 1.0):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} on {self.target} not serving after {wait}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None
        if self._log:
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class CoordServerProcess(_Process):
    """`python -m coord.cli serve --config zoo.cfg` with the running interpreter."""

    name = "coord"
    log_name = "coord.log"

    def _command(self) -> list[str]:
        cfg = self._write_cfg(self.workdir / "zoo.cfg", {"extendedTypesEnabled": "true"})
        return [sys.executable, "-m", "coord.cli", "serve", "--config", str(cfg), "--log-level", "warning"]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env


class ZooKeeperProcess(_Process):
    """Apache ZooKeeper 3.8 standalone (QuorumPeerMain with a standalone zoo.cfg)."""

    name = "ZooKeeper"
    log_name = "zookeeper.log"

    def __init__(self, workdir: Path, client_port: int | None = None, *, heap_mb: int = 1024,
                 jvm_flags=(), **kw):
        super().__init__(workdir, client_port, **kw)
        self.heap_mb = heap_mb
        self.jvm_flags = list(jvm_flags)   # e.g. zookeeper_trace_flags(workdir)

    def _command(self) -> list[str]:
        if not zookeeper_available():
            raise RuntimeError("real ZooKeeper not installed: apt-get install zookeeper")
        conf = self.workdir / "conf"
        cfg = self._write_cfg(conf / "zoo.cfg", {"admin.enableServer": "false",
                                                 "initLimit": "10", "syncLimit": "5"})
        return zookeeper_command(conf, cfg, self.workdir, self.heap_mb, self.jvm_flags)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("JAVA_TOOL_OPTIONS", None)
        return env


def pin_process(pid: int, cpus: set[int]) -> None:
    """Bind every thread of `pid` to `cpus` (`taskset -a`: PyPy's os has no sched_setaffinity; threads
    started later inherit it from their creator). For A/B runs on a small machine: a server and its
    load generator on separate cores do not preempt each other."""
    subprocess.run(["taskset", "-a", "-p", "-c", ",".join(map(str, sorted(cpus))), str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (Cpus_allowed_list; PyPy's os has no sched_getaffinity)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            out: set[int] = set()
            for part in line.split(":", 1)[1].strip().split(","):
                lo, _, hi = part.partition("-")
                out.update(range(int(lo), int(hi or lo) + 1))
            return out
    return set(range(os.cpu_count() or 1))
