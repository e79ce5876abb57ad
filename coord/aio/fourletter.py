"""Four-letter words in ZooKeeper 3.8's exact output formats (zktop, monitoring agents parse them).

Each word is a function of a read-only view of the server; the client port sends the text and closes.
"""
from __future__ import annotations

import os
import platform
import socket
import sys
import time

from coord import __version__
from coord.aio.limits import mntr_rows as limit_rows
from coord.aio.zoocfg import ServerConfig
from coord.runtime import rss_mib

ZK_COMPAT_VERSION = "3.8.4"
BUILT_ON = "2026-11-25 00:00 UTC"


def version_string() -> str:
    return f"{ZK_COMPAT_VERSION}-coord-{__version__}, built on {BUILT_ON}"


def _java_avg(total, count) -> str:
    """ServerStats' average latency as ZooKeeper prints it: a double rounded to 4 places."""
    return repr(round(total / count, 4)) if count else "0.0"


def _latency(stats) -> str:
    mn = stats.min_latency if stats.min_latency >= 0 else 0
    return f"{mn}/{_java_avg(stats.total_latency, stats.completed)}/{stats.max_latency}"


def _cons_line(conn, full: bool, core=None) -> str:
    queued = len(conn.queue)
    base = f" /{conn.remote}[{1 if conn.established else 0}](queued={queued},recved={conn.packets_received},sent={conn.packets_sent}"
    if not full or not conn.session_id or conn.session_id < 0:
        return base + ")"
    avg = conn.total_latency // conn.completed if conn.completed else 0
    mn = conn.min_latency if conn.min_latency >= 0 else 0
    # As ServerCnxn.dumpConnectionInfo: est is wall-clock ms, lresp elapsed-clock ms, to the
    # session timeout.
    est = core.now_ms - (core.mono_ms - conn.connected_at) if core is not None else conn.connected_at
    s = core.sessions.get(conn.session_id) if core is not None else None
    to = s.timeout_ms if s is not None else 0
    lresp = getattr(conn, "last_response", conn.connected_at)
    lcxid = f",lcxid=0x{conn.last_cxid:x}" if conn.last_cxid >= 0 else ""
    return (base + f",sid=0x{conn.session_id & 0xFFFFFFFFFFFFFFFF:x},lop={conn.last_op},est={est}"
            f",to={to}{lcxid},lzxid=0x{conn.last_zxid & 0xFFFFFFFFFFFFFFFF:x},lresp={lresp}"
            f",llat={conn.last_latency},minlat={mn},avglat={avg},maxlat={conn.max_latency})")


class FourLetterWords:
    def __init__(self, server):
        self.server = server  # coord.aio.server.CoordServer

    @property
    def core(self):
        return self.server.core

    @property
    def cfg(self) -> ServerConfig:
        return self.server.cfg

    def mode(self) -> str:
        return self.server.mode()

    def run(self, word: str) -> str:
        fn = getattr(self, "w_" + word, None)
        if fn is None or word not in self.cfg.four_letter_whitelist:
            return f"{word} is not executed because it is not in the whitelist.\n"
        return fn()

    def w_ruok(self) -> str:
        return "imok"

    def _summary(self) -> str:
        core = self.core
        s = core.stats
        lines = [
            f"Latency min/avg/max: {_latency(s)}",
            f"Received: {s.packets_received}",
            f"Sent: {s.packets_sent}",
            f"Connections: {len(core.conns)}",
            f"Outstanding: {s.outstanding}",
            f"Zxid: 0x{core.tree.last_zxid:x}",
            f"Mode: {self.mode()}",
            f"Node count: {core.tree.node_count()}",
        ]
        extra = self.server.mode_extra_lines()
        return "\n".join(lines + extra) + "\n"

    def w_srvr(self) -> str:
        return f"Zookeeper version: {version_string()}\n" + self._summary()

    def w_stat(self) -> str:
        clients = "".join(_cons_line(c, False) + "\n" for c in self.core.conns.values())
        return f"Zookeeper version: {version_string()}\nClients:\n{clients}\n" + self._summary()

    def w_cons(self) -> str:
        return "".join(_cons_line(c, True, self.core) + "\n" for c in self.core.conns.values()) + "\n"

    def w_isro(self) -> str:
        if not getattr(self.core, "serving", True):  # ZooKeeper's IsroCommand without a running server
            return "null"
        return "ro" if self.core.config.read_only else "rw"

    def w_crst(self) -> str:
        for c in self.core.conns.values():  # ServerCnxn.resetStats
            c.packets_received = c.packets_sent = 0
            c.min_latency, c.max_latency, c.total_latency, c.completed = -1, 0, 0, 0
            c.last_op, c.last_cxid, c.last_zxid, c.last_latency = "NA", -1, -1, 0
            c.last_response = 0
        return "Connection stats reset.\n"

    def w_srst(self) -> str:
        self.core.stats.reset()
        return "Server stats reset.\n"

    def w_conf(self) -> str:
        cfg = self.cfg
        core = self.core
        lines = [
            f"clientPort={cfg.client_port}",
            "secureClientPort=-1",
            f"dataDir={cfg.data_dir.resolve()}",
            f"dataDirSize={_dir_size(cfg.data_dir)}",
            f"dataLogDir={cfg.log_dir.resolve()}",
            f"dataLogSize={_dir_size(cfg.log_dir)}",
            f"tickTime={cfg.tick_ms}",
            f"maxClientCnxns={cfg.max_client_cnxns}",
            f"minSessionTimeout={core.config.min_timeout}",
            f"maxSessionTimeout={core.config.max_timeout}",
            "clientPortListenBacklog=-1",
            f"serverId={cfg.myid or 0}",
        ]
        if cfg.servers and not cfg.standalone:
            lines += [f"initLimit={cfg.init_limit}", f"syncLimit={cfg.sync_limit}", "electionAlg=3",
                      "electionPort=-1", "quorumPort=-1", "peerType=0", "membership: "]
            lines += [f"server.{sid}={s.spec()}" for sid, s in sorted(cfg.servers.items())]
        return "\n".join(lines) + "\n"

    def w_envi(self) -> str:
        lines = [
            "Environment:",
            f"zookeeper.version={version_string()}",
            f"host.name={socket.gethostname()}",
            f"java.version={platform.python_version()}",
            "java.vendor=coord (CPython)",
            f"java.home={sys.prefix}",
            f"java.class.path={os.pathsep.join(sys.path[:3])}",
            "java.library.path=",
            "java.io.tmpdir=/tmp",
            "java.compiler=<NA>",
            f"os.name={platform.system()}",
            f"os.arch={platform.machine()}",
            f"os.version={platform.release()}",
            f"user.name={_user()}",
            f"user.home={os.path.expanduser('~')}",
            f"user.dir={os.getcwd()}",
            f"os.memory.free={rss_mib()}MB",
            f"os.memory.max={rss_mib()}MB",
            f"os.memory.total={rss_mib()}MB",
            f"coord.version={__version__}",
        ]
        return "\n".join(lines) + "\n"

    def w_wchs(self) -> str:
        table = self.core.watches.data
        return (f"{len(table.by_watcher)} connections watching {len(table.table)} paths\n"
                f"Total watches:{table.count()}\n")

    def _session_of(self, conn_id: int) -> int:
        c = self.core.conns.get(conn_id)
        return (c.session_id & 0xFFFFFFFFFFFFFFFF) if c else 0

    def w_wchc(self) -> str:
        out = []
        for w, paths in self.core.watches.data.by_watcher.items():
            out.append(f"0x{self._session_of(w):x}")
            out += [f"\t{p}" for p in sorted(paths)]
        return "\n".join(out) + "\n\n" if out else "\n"

    def w_wchp(self) -> str:
        out = []
        for path, ws in sorted(self.core.watches.data.table.items()):
            out.append(path)
            out += [f"\t0x{self._session_of(w):x}" for w in ws]
        return "\n".join(out) + "\n\n" if out else "\n"

    def w_dump(self) -> str:
        core = self.core
        sessions = core.sessions.sessions
        lines = ["SessionTracker dump:", f"Session Sets ({len(core.sessions.buckets)})/({len(sessions)}):"]
        for deadline, sids in sorted(core.sessions.buckets.items()):
            when = time.strftime("%a %b %d %H:%M:%S UTC %Y",
                                 time.gmtime((core.now_ms + deadline - core.mono_ms) / 1000))
            lines.append(f"{len(sids)} expire at {when}:")
            lines += [f"\t0x{s & 0xFFFFFFFFFFFFFFFF:x}" for s in sorted(sids)]
        eph = core.ephemeral_owner_sessions()
        lines.append("ephemeral nodes dump:")
        lines.append(f"Sessions with Ephemerals ({len(eph)}):")
        for sid, paths in sorted(eph.items()):
            lines.append(f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}:")
            lines += [f"\t{p}" for p in sorted(paths)]
        # NIOServerCnxnFactory groups connections by the tick its expiry queue has them in: the
        # session's deadline, or (no session yet) the sessionless-connection timeout of 10 ticks.
        tick = core.sessions.tick_ms
        groups: dict[int, list] = {}
        for c in core.conns.values():
            s = core.sessions.get(c.session_id) if c.session_id > 0 else None
            deadline = s.deadline if s is not None and s.deadline else \
                (c.connected_at + 10 * tick) // tick * tick + tick
            groups.setdefault(deadline, []).append(c)
        lines.append("Connections dump:")
        lines.append(f"Connections Sets ({len(groups)})/({len(core.conns)}):")
        for deadline, conns in sorted(groups.items()):
            when = time.strftime("%a %b %d %H:%M:%S UTC %Y",
                                 time.gmtime((core.now_ms + deadline - core.mono_ms) / 1000))
            lines.append(f"{len(conns)} expire at {when}:")
            for c in conns:
                lines.append(f"\tip: /{c.remote} sessionId: 0x{(c.session_id if c.session_id > 0 else 0) & 0xFFFFFFFFFFFFFFFF:x}")
        return "\n".join(lines) + "\n"

    def w_dirs(self) -> str:
        return f"datadir_size: {_dir_size(self.cfg.data_dir)}\nlogdir_size: {_dir_size(self.cfg.log_dir)}\n"

    def w_mntr(self) -> str:
        return "".join(f"{k}\t{v}\n" for k, v in self.mntr_rows())

    def mntr_rows(self, extra: bool = True) -> list[tuple[str, object]]:
        """mntr's rows; also the gauges of /metrics (coord.aio.metrics), which with extra=True (the
        Prometheus provider on) add their counters and summaries here, as ZooKeeper's mntr does."""
        core = self.core
        s = core.stats
        rows = [
            ("zk_version", version_string()),
            ("zk_server_state", self.mode()),
            ("zk_ephemerals_count", core.tree.ephemeral_count()),
            ("zk_num_alive_connections", len(core.conns)),
            ("zk_avg_latency", _java_avg(s.total_latency, s.completed)),
            ("zk_outstanding_requests", s.outstanding),
            ("zk_znode_count", core.tree.node_count()),
            ("zk_global_sessions", core.session_count()),
            ("zk_local_sessions", core.local_session_count()),
            ("zk_packets_sent", s.packets_sent),
            ("zk_packets_received", s.packets_received),
            ("zk_watch_count", core.watches.count()),
            ("zk_approximate_data_size", core.tree.data_bytes),
            ("zk_open_file_descriptor_count", _open_fds()),
            ("zk_max_file_descriptor_count", _max_fds()),
            ("zk_min_latency", s.min_latency if s.min_latency >= 0 else 0),
            ("zk_max_latency", s.max_latency),
            ("zk_uptime", int(time.monotonic() * 1000 - self.server.started_mono_ms)),
            ("zk_fsync_count", self.server.fsync_count()),
            ("zk_last_proposal_size", 0),
            ("zk_digest", core.tree.digest),
        ]
        rows += self.server.mode_mntr_rows()
        rows += limit_rows(self.server)
        metrics = getattr(self.server, "metrics", None)
        if extra and metrics is not None:
            rows += metrics.mntr_rows()
        return rows


def _dir_size(path) -> int:
    total = 0
    try:
        for root, _, files in os.walk(path):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
    except OSError:
        pass
    return total


def _user() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except Exception:
        return str(os.getuid())


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _max_fds() -> int:
    try:
        import resource
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except Exception:
        return 0
