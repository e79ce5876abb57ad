"""ZooKeeper 3.8's AdminServer: `/commands/<name>` answering JSON in Jackson's pretty-printed form.

`admin.enableServer` (default true), `admin.serverAddress` (0.0.0.0), `admin.serverPort` (8080),
`admin.commandURL` (/commands). GET `/commands` is the HTML index; `/commands/<name or alias>`
answers `{ data fields..., "command" : <primary name>, "error" : null }` with ZooKeeper's field
names and order, so that probes written for ZooKeeper (`grep error | grep null`) pass. `/ready` is
coord's own quorum-aware readiness check (ClickHouse Keeper's shape): 200 when this server serves
with a leader (or standalone), 503 otherwise; `ruok` answers without a quorum, as ZooKeeper's does.

Why in the event loop (coord.aio.httpd) and not http.server in a thread: every command reads (and
crst/srst reset) state the loop owns; in the loop that needs no lock and no copy. A port that cannot
be bound is logged and the server runs on without it, as ZooKeeper's QuorumPeer does.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from decimal import Decimal

from coord.aio import fourletter as fl

log = logging.getLogger("coord.admin")
ZK_DEFAULT_TRACE_MASK = 306   # ZooTrace's default mask, what get_trace_mask reports


# -- Jackson's DefaultPrettyPrinter ------------------------------------------------------------------
def java_double(x: float) -> str:
    """Double.toString: shortest digits, scientific (1.0E7) outside [1e-3, 1e7)."""
    if x != x:
        return '"NaN"'
    if x in (float("inf"), float("-inf")):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    if x == 0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    a = abs(x)
    if 1e-3 <= a < 1e7:
        s = repr(float(x))
        if "e" in s:
            s = format(Decimal(s), "f")
        return s if "." in s else s + ".0"
    sign, digits, exp = Decimal(repr(float(x))).normalize().as_tuple()
    ds = "".join(map(str, digits))
    e = len(ds) - 1 + exp
    mant = ds[0] + "." + (ds[1:] or "0")
    return ("-" if sign else "") + f"{mant}E{e}"


def _string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def pretty(v, indent: int = 0) -> str:
    """Jackson's INDENT_OUTPUT: objects one field a line (`"k" : v`), arrays inline (`[ a, b ]`)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return java_double(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, dict):
        if not v:
            return "{ }"
        pad = "  " * (indent + 1)
        body = ",\n".join(f"{pad}{_string(str(k))} : {pretty(x, indent + 1)}" for k, x in v.items())
        return "{\n" + body + "\n" + "  " * indent + "}"
    if isinstance(v, (list, tuple, set)):
        if not v:
            return "[ ]"
        return "[ " + ", ".join(pretty(x, indent) for x in v) + " ]"
    return _string(str(v))


# -- commands ------------------------------------------------------------------------------------------
class Commands:
    """ZooKeeper's Commands.java, over coord's server (the same sources as the four-letter words)."""

    # primary name, aliases, method; in Commands.java's registration order
    TABLE = [
        ("configuration", ("conf", "config"), "conf"),
        ("connection_stat_reset", ("crst",), "crst"),
        ("connections", ("cons",), "cons"),
        ("dirs", (), "dirs"),
        ("dump", (), "dump"),
        ("environment", ("env", "envi"), "envi"),
        ("get_trace_mask", ("gtmk",), "gtmk"),
        ("hash", (), "hash"),
        ("initial_configuration", ("icfg",), "icfg"),
        ("is_read_only", ("isro",), "isro"),
        ("last_snapshot", ("lsnp",), "lsnp"),
        ("leader", ("lead",), "leader"),
        ("monitor", ("mntr",), "mntr"),
        ("observer_connection_stat_reset", ("orst",), "orst"),
        ("observers", ("obsr",), "obsr"),
        ("ruok", (), "ruok"),
        ("server_stats", ("srvr",), "srvr"),
        ("set_trace_mask", ("stmk",), "stmk"),
        ("stat_reset", ("srst",), "srst"),
        ("stats", ("stat",), "stat"),
        ("system_properties", ("sysp",), "sysp"),
        ("voting_view", (), "voting_view"),
        ("watch_summary", ("wchs",), "wchs"),
        ("watches", ("wchc",), "wchc"),
        ("watches_by_path", ("wchp",), "wchp"),
        ("zabstate", (), "zabstate"),
    ]

    def __init__(self, server):
        self.server = server
        self.trace_mask = ZK_DEFAULT_TRACE_MASK
        self.by_name = {}
        for primary, aliases, meth in self.TABLE:
            for n in (primary, *aliases):
                self.by_name[n] = (primary, getattr(self, "c_" + meth))

    @property
    def core(self):
        return self.server.core

    @property
    def words(self) -> fl.FourLetterWords:
        return self.server.words

    @property
    def quorum(self) -> bool:
        return getattr(self.server, "peer", None) is not None

    def run(self, name: str, query: dict) -> dict:
        """The command's response map: data fields, then command and error (ZooKeeper's order)."""
        entry = self.by_name.get(name)
        if entry is None:
            return {"command": name, "error": f"Unknown command: {name}"}
        primary, fn = entry
        self.server.tick_clock()
        try:
            data = fn(query)
        except _NotInitialized:
            return {"error": "server is not initialized", "command": primary}
        except Exception as e:   # a diagnostic must never take the server down
            log.exception("admin command %s failed", primary)
            return {"command": primary, "error": f"{type(e).__name__}: {e}"}
        return {**data, "command": primary, "error": None}

    # -- the commands --------------------------------------------------------------------------------
    def c_ruok(self, q):
        return {}

    def _server_stats(self) -> dict:
        core, s, srv = self.core, self.core.stats, self.server
        resp = {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}
        # Jackson orders ServerStats' getters as the JVM lists them: 3.8 ensembles print this order
        # (one standalone run printed another; probes read fields by name)
        return {
            "packets_sent": s.packets_sent,
            "packets_received": s.packets_received,
            "fsync_threshold_exceed_count": 0,
            "client_response_stats": dict(resp),
            "provider_null": False,
            "server_state": self.server.mode(),
            "outstanding_requests": s.outstanding,
            "min_latency": s.min_latency if s.min_latency >= 0 else 0,
            "avg_latency": round(s.total_latency / s.completed, 4) if s.completed else 0.0,
            "max_latency": s.max_latency,
            "data_dir_size": fl._dir_size(srv.cfg.data_dir),
            "log_dir_size": fl._dir_size(srv.cfg.log_dir),
            "last_processed_zxid": core.tree.last_zxid,
            "num_alive_client_connections": len(core.conns),
            "auth_failed_count": 0,
            "non_mtlsremote_conn_count": 0,
            "non_mtlslocal_conn_count": 0,
            "uptime": int(time.monotonic() * 1000 - srv.started_mono_ms),
        }

    def c_srvr(self, q):
        out = {"version": fl.version_string(), "read_only": bool(self.core.config.read_only),
               "server_stats": self._server_stats(),
               "client_response": {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}}
        if getattr(self.server, "role", None) == "leading":
            i = self.server._info()
            out["proposal_stats"] = {"last_buffer_size": i.get("zk_last_proposal_size", -1),
                                     "min_buffer_size": i.get("zk_min_proposal_size", -1),
                                     "max_buffer_size": i.get("zk_max_proposal_size", -1)}
        out["node_count"] = self.core.tree.node_count()
        return out

    def _conn_brief(self, c) -> dict:
        return {"remote_socket_address": c.remote, "interest_ops": 1, "outstanding_requests": len(c.queue),
                "packets_received": c.packets_received, "packets_sent": c.packets_sent}

    def _conn_full(self, c) -> dict:
        out = self._conn_brief(c)
        if not c.session_id or c.session_id < 0:
            return out
        core = self.core
        s = core.sessions.get(c.session_id)
        out.update(session_id=c.session_id, last_operation=c.last_op,
                   established=core.now_ms - (core.mono_ms - c.connected_at),
                   session_timeout=s.timeout_ms if s is not None else 0,
                   last_cxid=c.last_cxid, last_zxid=c.last_zxid,
                   last_response_time=getattr(c, "last_response", c.connected_at),
                   last_latency=c.last_latency, min_latency=c.min_latency if c.min_latency >= 0 else 0,
                   avg_latency=c.total_latency // c.completed if c.completed else 0,
                   max_latency=c.max_latency)
        return out

    def c_stat(self, q):
        out = self.c_srvr(q)
        out["connections"] = [self._conn_brief(c) for c in self.core.conns.values()]
        out["secure_connections"] = []
        return out

    def c_cons(self, q):
        return {"connections": [self._conn_full(c) for c in self.core.conns.values()], "secure_connections": []}

    def c_crst(self, q):
        self.words.w_crst()
        return {}

    def c_srst(self, q):
        self.words.w_srst()
        return {}

    def c_orst(self, q):
        return {}

    def c_conf(self, q):
        cfg, core = self.server.cfg, self.core
        # ZooKeeperServerConf.toMap: the same nine fields standalone and in an ensemble
        return {"client_port": cfg.client_port,
                "data_dir": str((cfg.data_dir / "version-2").resolve()),
                "data_log_dir": str((cfg.log_dir / "version-2").resolve()),
                "tick_time": cfg.tick_ms, "max_client_cnxns": cfg.max_client_cnxns,
                "min_session_timeout": core.config.min_timeout, "max_session_timeout": core.config.max_timeout,
                "server_id": cfg.myid or 0, "client_port_listen_backlog": -1}

    def c_envi(self, q):
        out = {}
        for line in self.words.w_envi().splitlines()[1:]:
            k, _, v = line.partition("=")
            if k != "coord.version":   # ZooKeeper's keys only; coord's version is in zookeeper.version
                out[k] = v
        return out

    def c_dirs(self, q):
        cfg = self.server.cfg
        return {"datadir_size": fl._dir_size(cfg.data_dir), "logdir_size": fl._dir_size(cfg.log_dir)}

    def c_dump(self, q):
        core = self.core
        expiry = {}
        for deadline, sids in sorted(core.sessions.buckets.items()):
            expiry[str(core.now_ms + deadline - core.mono_ms)] = sorted(sids)
        eph = {str(sid): sorted(paths) for sid, paths in sorted(core.ephemeral_owner_sessions().items())}
        return {"expiry_time_to_session_ids": expiry, "session_id_to_ephemeral_paths": eph}

    def _sid_of(self, watcher: int) -> int:
        c = self.core.conns.get(watcher)
        return c.session_id if c else 0

    def c_wchs(self, q):
        t = self.core.watches.data
        return {"num_connections": len(t.by_watcher), "num_paths": len(t.table), "num_total_watches": t.count()}

    def c_wchc(self, q):
        t = self.core.watches.data
        return {"session_id_to_watched_paths": {str(self._sid_of(w)): sorted(p) for w, p in t.by_watcher.items()}}

    def c_wchp(self, q):
        t = self.core.watches.data
        return {"path_to_session_ids": {p: [self._sid_of(w) for w in ws] for p, ws in sorted(t.table.items())}}

    def c_isro(self, q):
        return {"read_only": bool(self.core.config.read_only)}

    def c_gtmk(self, q):
        return {"tracemask": self.trace_mask}

    def c_stmk(self, q):
        try:
            self.trace_mask = int(q["traceMask"])
        except (KeyError, ValueError):
            raise ValueError("setTraceMask requires long traceMask paramter") from None
        return {"tracemask": self.trace_mask}

    def c_hash(self, q):
        tree = self.core.tree
        return {"digests": [{"zxid": tree.last_zxid, "digest_version": 2, "digest": tree.digest}]}

    def c_icfg(self, q):
        path = self.server.cfg.path
        try:
            text = open(path).read() if path else ""
        except OSError:
            text = ""
        return {"initial_configuration": text}

    def c_lsnp(self, q):
        from coord.aio.snapshots import list_snapshots
        snaps = list_snapshots(self.server.storage.snap_dir)
        if not snaps:
            return {"zxid": "0", "timestamp": int(self.server.started_mono_ms and time.time())}
        z, p = snaps[-1]
        return {"zxid": f"{z:x}", "timestamp": int(os.path.getmtime(p))}

    def c_leader(self, q):
        if not self.quorum:
            raise _NotInitialized()
        peer = self.server.peer
        lid = peer.leader_sid if peer.leader_sid is not None else -1
        q_ = self.server.cfg.servers.get(lid)
        return {"is_leader": self.server.role == "leading", "leader_id": lid,
                "leader_ip": q_.host if q_ is not None else ""}

    def c_mntr(self, q):
        rows = self.words.mntr_rows(extra=False)
        out = {}
        metrics = getattr(self.server, "metrics", None)
        if metrics is not None:
            # the Prometheus provider's dump, as ZooKeeper's: version, state, then every sample as a double
            out["version"] = fl.version_string()
            out["server_state"] = self.server.mode()
            for k, v in rows:
                if k == "zk_peer_state":
                    out["peer_state"] = v
            from coord.aio.metrics import _labels, runtime_families
            fams = metrics.families() + (runtime_families() if metrics.export_runtime else [])
            for m in fams:
                for s in m.samples:
                    out[s.name + _labels(s.labels, trailing=False)] = float(s.value)
            return out
        for k, v in rows:
            out[k[3:] if k.startswith("zk_") else k] = _num(v)
        return out

    def c_obsr(self, q):
        i = self.server._info() if self.quorum else {}
        return {"synced_observers": i.get("zk_synced_observers", 0), "observers": []}

    def c_sysp(self, q):
        """No JVM here: the properties that have a meaning for this process, Java's names."""
        props = {
            "file.separator": os.sep, "java.home": sys.prefix, "java.io.tmpdir": "/tmp",
            "java.version": platform.python_version(), "java.vm.name": platform.python_implementation(),
            "line.separator": os.linesep, "os.arch": platform.machine(), "os.name": platform.system(),
            "os.version": platform.release(), "path.separator": os.pathsep, "user.dir": os.getcwd(),
            "user.home": os.path.expanduser("~"), "user.name": fl._user(),
        }
        return dict(sorted(props.items()))

    def c_voting_view(self, q):
        if not self.quorum:
            return {"current_config": {}}
        return {"current_config": {str(sid): {
            "server_addresses": [f"{s.host}:{s.quorum_port}"],
            "election_addresses": [f"{s.host}:{s.election_port}"],
            "client_address": f"{s.client_host or '0.0.0.0'}:{s.client_port}" if s.client_port else "",
            "learner_type": s.role} for sid, s in sorted(self.server.voters.items())}}

    def c_zabstate(self, q):
        if not self.quorum:
            return {"voting": False, "zabstate": ""}
        srv, peer = self.server, self.server.peer
        me = srv.cfg.servers.get(srv.sid)
        last = peer.last_zxid
        return {"myid": srv.sid, "is_leader": srv.role == "leading",
                "quorum_address": _multiple_addresses(me.host, me.quorum_port) if me else {},
                "election_address": _multiple_addresses(me.host, me.election_port) if me else {},
                "client_address": f"{srv.cfg.client_port_address}:{srv.cfg.client_port}",
                "voting": srv.sid in srv.voters, "last_zxid": f"0x{last:x}",
                "zab_epoch": last >> 32, "zab_counter": last & 0xFFFFFFFF,
                "zabstate": "broadcast" if srv.core.serving else ("election" if srv.role == "looking"
                                                                   else "synchronization")}

    # -- readiness -----------------------------------------------------------------------------------
    def ready(self) -> tuple[bool, dict]:
        """Serving with a leader (a member) or serving at all (standalone)."""
        srv = self.server
        serving = bool(getattr(srv.core, "serving", True))
        if not self.quorum:
            role = srv.mode()
            ok = serving and role != "read-only"
            return ok, {"details": {"role": role, "hasLeader": ok}, "status": "ok" if ok else "fail"}
        role = fl.FourLetterWords.mode(self.words)
        has_leader = serving and srv.role in ("leading", "following", "observing") and not srv.ro_active
        return has_leader, {"details": {"role": role, "hasLeader": has_leader},
                            "status": "ok" if has_leader else "fail"}


class _NotInitialized(Exception):
    pass


def _num(v):
    if isinstance(v, (int, float)):
        return v
    try:
        return int(v)
    except (TypeError, ValueError):
        try:
            return float(v)
        except (TypeError, ValueError):
            return v


def _multiple_addresses(host: str, port: int) -> dict:
    """ZooKeeper's MultipleAddresses as Jackson serializes its getters (zabstate prints it so)."""
    a = f"{host}:{port}"
    return {"empty": False, "all_addresses": [a], "all_reachable_addresses": [a], "one": a,
            "reachable_address": a, "wildcard_addresses": [f"0.0.0.0:{port}"], "all_ports": [port],
            "all_host_strings": [host], "all_reachable_addresses_or_all": [a], "reachable_or_one": a}


class AdminServer:
    def __init__(self, server):
        self.server = server
        cfg = server.cfg
        self.host = cfg.admin_server_address
        self.port = cfg.admin_server_port
        self.url = cfg.admin_command_url.rstrip("/") or "/commands"
        self.commands = Commands(server)
        self.http = None

    def index(self) -> bytes:
        names = sorted(p for p, _, _ in Commands.TABLE)
        return "".join(f'<a href="{self.url}/{n}">{n}</a>\n<br/>\n' for n in names).encode()

    def handle(self, method: str, path: str, query: dict, headers: dict, body: bytes):
        if path in (self.url + "/snapshot", self.url + "/snap") and method == "GET":
            return self.snapshot(query, headers)
        if path in (self.url + "/restore", self.url + "/rest") and method == "POST":
            return self.restore(headers, body)
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"HTTP method not supported\n", {}
        if path == "/ready":
            ok, data = self.commands.ready()
            return (200 if ok else 503), "application/json", json.dumps(data).encode(), {}
        if path in (self.url, self.url + "/"):
            return 200, "text/html", self.index(), {}
        if path.startswith(self.url + "/"):
            name = path[len(self.url) + 1:].strip("/")
            resp = self.commands.run(name, query)
            return 200, "application/json", pretty(resp).encode(), {}
        return 404, "text/plain", b"Not Found\n", {}

    # -- 3.9's snapshot command ----------------------------------------------------------------------
    def _authorized(self, headers: dict) -> int:
        """3.9's rule: `Authorization: digest user:password` whose id holds ALL on `/` (200), no or
        an unusable header (401), an id without ALL on `/` (403)."""
        from coord.core import acl as aclmod
        scheme, _, cred = headers.get("authorization", "").strip().partition(" ")
        if scheme != "digest" or ":" not in cred:
            return 401
        ident = aclmod.digest_id(cred.strip())
        ids = (("digest", ident),)
        sd = self.server.core.config.super_digest
        if sd and sd == ident:
            ids += (("super", ident),)
        root = self.server.core.tree.get("/")
        return 200 if aclmod.check(root.acl, int(aclmod.Perms.ALL), ids) else 403

    async def snapshot(self, query: dict, headers: dict):
        """GET snapshot[?streaming=true]: take a snapshot of the tree as of now and send the file,
        with headers last_zxid and snapshot_size (ZooKeeper 3.9's `snapshot` command)."""
        import asyncio
        code = self._authorized(headers)
        if code != 200:
            msg = {401: "Auth info is missing for the command", 403: "Not authorized"}[code]   # 3.9's words
            return code, "application/json", pretty({"command": "snapshot", "error": msg}).encode(), {}
        srv = self.server
        if not getattr(srv.core, "serving", True):
            return 503, "application/json", pretty({"command": "snapshot",
                                                    "error": "server is not serving"}).encode(), {}
        storage = srv.storage
        while storage.snapshots.in_progress:     # one at a time: wait for the running one
            await asyncio.sleep(0.01)
        task = storage.snapshot(srv.core.tree)
        path = await task if task is not None else None
        if path is None:
            return 500, "application/json", pretty({"command": "snapshot",
                                                    "error": "the snapshot failed (see the log)"}).encode(), {}
        from coord.aio.snapshots import list_snapshots
        zxid = next(z for z, p in list_snapshots(storage.snap_dir) if p == path)
        data = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        hdrs = {"last_zxid": f"0x{zxid:x}", "snapshot_size": str(len(data))}
        if query.get("streaming", "true").lower() == "false":
            return 200, "application/json", pretty({"last_zxid": hdrs["last_zxid"], "snapshot_size": len(data),
                                                    "command": "snapshot", "error": None}).encode(), hdrs
        return 200, "application/octet-stream", data, hdrs

    # -- 3.9's restore command -----------------------------------------------------------------------
    RESTORE_INTERVAL_S = 300.0      # zookeeper.admin.rateLimiterIntervalInMS's default: one per 5 min

    def _restore_interval_s(self) -> float:
        ms = getattr(self.server.cfg, "admin_rate_limiter_interval_ms", None)
        return self.RESTORE_INTERVAL_S if ms is None else ms / 1000

    async def restore(self, headers: dict, body: bytes):
        """POST restore (alias rest) with a snapshot as the body (what `snapshot` sent): replace the
        live tree with it (ZooKeeper 3.9's `restore`, behind the same digest Authorization, one per
        5 minutes: 429, `zookeeper.admin.rateLimiterIntervalInMS`). coord then makes it durable at
        once: the restored tree takes the zxid max(restored, current) and is written as the newest
        snapshot, so a restart recovers it and the log before it is never replayed over it. On an
        ensemble member the whole ensemble is restored through the leader (leader.py, "Restore"),
        answered once a quorum holds the restored tree durable."""
        import asyncio
        import time
        from coord.core import snapformat

        def answer(code, err=None, **extra):
            doc = dict(extra)
            doc.update({"command": "restore", "error": err})
            return code, "application/json", pretty(doc).encode(), {}
        code = self._authorized(headers)
        if code != 200:
            return answer(code, {401: "Auth info is missing for the command", 403: "Not authorized"}[code])
        srv = self.server
        if not getattr(srv.cfg, "admin_restore_enabled", True):
            return answer(503, "restore is disabled (admin.restore.enabled=false)")
        if not body:
            return answer(400, "the request body must be a snapshot (as the snapshot command sends it)")
        now = time.monotonic()
        if now < getattr(self, "next_restore", 0.0):
            return answer(429, f"restore is rate limited: one per {self._restore_interval_s():g} s")
        try:
            tree, info = await asyncio.get_running_loop().run_in_executor(None, snapformat.load_bytes, body)
        except Exception as e:          # noqa: BLE001 - any undecodable body is the caller's bad input
            return answer(500, f"not a usable snapshot: {e}")
        self.next_restore = now + self._restore_interval_s()
        if getattr(srv, "peer", None) is not None:
            cfg = srv.cfg
            limit = 2 * cfg.init_limit * cfg.tick_ms / 1000 + 30
            z, why = await srv.restore(body, tree, limit)
            if why is not None:
                unknown = "outcome unknown" in why
                if not unknown:
                    self.next_restore = now      # nothing was restored: the caller may ask again
                return answer(500 if unknown else 503, why)
            log.info("restore: the ensemble's tree replaced by a snapshot of zxid 0x%x (%d znodes, %d "
                     "sessions); now at 0x%x", info.zxid, len(tree.nodes), len(tree.sessions), z)
            return answer(200, last_zxid=z)
        storage = srv.storage
        while storage.snapshots.in_progress:
            await asyncio.sleep(0.01)
        while storage.txnlog.pending():          # writes already on their way to the log land first
            await asyncio.sleep(0.001)
        core = srv.core
        before = core.tree.last_zxid
        tree.last_zxid = max(tree.last_zxid, before)
        core.replace_tree(tree, "the server's tree was restored from a snapshot")
        srv.flush()
        task = storage.snapshot(tree)
        path = await task if task is not None else None
        if path is None:
            return answer(500, "restored in memory, but the snapshot that makes it durable failed (see the log)")
        log.info("restore: tree replaced by a snapshot of zxid 0x%x (%d znodes, %d sessions); now at 0x%x",
                 info.zxid, len(tree.nodes), len(tree.sessions), tree.last_zxid)
        return answer(200, last_zxid=tree.last_zxid)

    async def start(self) -> None:
        from coord.aio.httpd import HttpServer
        self.http = HttpServer(self.handle, "admin")
        self.port = await self.http.start(self.host, self.port)
        log.info("AdminServer on http://%s:%d%s", self.host, self.port, self.url)

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.stop()


async def start_server(server) -> AdminServer | None:
    """admin.enableServer: the AdminServer, or None (disabled, or its port taken: logged)."""
    if not server.cfg.admin_enable_server:
        return None
    a = AdminServer(server)
    try:
        await a.start()
    except OSError as e:
        log.warning("AdminServer not started on %s:%d: %s", a.host, a.port, e)
        return None
    return a
