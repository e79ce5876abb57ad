"""A coord server observing a live Apache ZooKeeper 3.8 ensemble: the asyncio driver of
coord.core.zkpeer (the protocol decisions all live there).

Started by the ZooKeeper servers' own zoo.cfg with this server's `server.N=host:q:e:observer` line
added (and dataDir/myid holding N) plus `coord.peerProtocol=zookeeper`. The driver:
  - dials every voter's election port (QuorumCnxManager: InitialMessage, then length-framed
    notifications), sends our non-vote and feeds the answers to LeaderFinder until the leader is
    settled; it also accepts voters' dials on our election port and closes them (their sid is lower,
    so ZooKeeper expects us to dial, as we do);
  - dials the leader's quorum port and moves bytes between it and ZkObserver; a link silent for
    syncLimit ticks is dead (the leader pings every half tick);
  - serves clients with the standalone shell (CoordServer) in front of the shared ServerCore;
  - after a lost leader, looks for the leader again, as a ZooKeeper observer does.
State is kept as coord's own (coord.aio.datadir): every applied txn goes to the txn log, a SNAP
is installed as a coord snapshot (the log restarting after it), periodic snapshots as usual, and
the accepted/current epochs in the epoch files, written before the packet that acknowledges them
leaves. A restarted observer recovers that state and the leader syncs it by DIFF (or SNAP, as it
chooses); `coord migrate take-over` starts coord's own Zab from the same files.
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import gc
import logging
import os
import platform
import struct
import time

from coord import runtime
from coord.aio.datadir import RecoveryError
from coord.aio.epochs import EpochFileError, EpochStore
from coord.aio.leaderlink import LeaderLink
from coord.aio.server import CoordServer, core_config, mono_ms, wall_ms
from coord.aio.zoocfg import ServerConfig
from coord.core.server import ServerCore
from coord.core.zkpeer.election import LeaderFinder
from coord.core.zkpeer.observer import ZkObserver
from coord.core.zkpeer.quorum_auth import DigestMD5Learner, QuorumAuthError
from coord.core.zkpeer.quorum_auth import header as quorum_auth_header
from coord.jute import quorum as Q

log = logging.getLogger("coord.zkpeer")
NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_LEN = struct.Struct(">i")
RETRY_S = 0.2
# While a SNAP streams in, PyPy's GC frees the large objects that die on the way (the tables of
# the node dict and of a big parent's child set, outgrown) only at its next major collection, and
# malloc keeps what it frees: a 1M-znode SNAP (188 MB) peaked at 1,007 MB with ~600 MB of it the
# tree, when every read's bytes were garbage too. A collection and a trim every 24 MB of stream (and
# one at its end) held the peak at 768 MB for +0.26 s of CPU (in process, PyPy). Since the link
# receives into a reused buffer (coord.aio.leaderlink) there is far less garbage: on the 1M join
# (load 11-14) every 24 MB peaked at 668 MB for 1.13 s of collections' CPU, 40 MB at 669-671 MB
# (0.75 s), 48 MB at 696 MB (0.61 s), 64 MB at 720 MB (0.45 s; ZooKeeper's observer: 755 MB).
# Not on CPython: reference counting frees them.
SNAP_COLLECT_BYTES = 64 << 20
_PYPY = platform.python_implementation() == "PyPy"
TAKEOVER_WORD = "tkov"                  # the four-letter word `coord migrate take-over` sends
TAKEOVER_MARKER = "coord-takeover.cfg"  # in dataDir: the membership this server runs after taking over


def quorum_sasl_credentials(cfg: ServerConfig) -> tuple[str, str] | None:
    """quorum.auth.enableSasl + learnerRequireSasl: the DIGEST-MD5 username and password of the JAAS
    section quorum.auth.learner.saslLoginContext (default QuorumLearner); None when off."""
    qa = cfg.quorum_auth
    on = qa.get("quorum.auth.enableSasl", "false") == "true"
    if not on or qa.get("quorum.auth.learnerRequireSasl", "false") != "true":
        return None
    section = qa.get("quorum.auth.learner.saslLoginContext", "QuorumLearner")
    from coord.aio.jaas import JaasError, server_section
    try:
        modules = server_section(cfg.jaas_config, section) if cfg.jaas_config else None
    except JaasError as e:
        raise ZkObserverError(str(e)) from None
    for m in modules or ():
        if "username" in m.options and "password" in m.options:
            return m.options["username"], m.options["password"]
    raise ZkObserverError(f"quorum.auth.learnerRequireSasl=true needs a JAAS section {section} with a "
                          "username and password (java.security.auth.login.config)")


class ZkObserverError(Exception):
    pass


def takeover_allowed_from(ip: str, cfg: ServerConfig) -> bool:
    """Whether a take-over may be asked from this address: loopback, or a host of the ensemble's own
    server lines. The word turns observers into an ensemble of their own once no ZooKeeper voter
    answers them, which a client cut off from the voters with them must not be able to ask for."""
    import ipaddress
    import socket
    try:
        if ipaddress.ip_address(ip.split("%")[0]).is_loopback:
            return True
    except ValueError:
        return False
    for q in cfg.servers.values():
        try:
            infos = socket.getaddrinfo(q.host, None)
        except OSError:
            continue
        if any(info[4][0] == ip for info in infos):
            return True
    return False


def render_config(cfg: ServerConfig) -> bytes:
    """The membership as a QuorumVerifier prints it (what notifications carry); version 0, so a
    ZooKeeper server never takes it for a newer configuration."""
    lines = [f"server.{sid}={q.spec()}" for sid, q in sorted(cfg.servers.items())]
    return ("\n".join(lines) + "\nversion=0").encode()


def still_answering(answering: list[str]) -> str:
    """Why a take-over is refused while ZooKeeper voters answer (the observer's and the command's)."""
    return ("ZooKeeper voters still answer: " + ", ".join(answering) +
            "; stop every ZooKeeper server first (nothing was changed)")


async def answering_voters(voters: dict, timeout_s: float = 1.0) -> list[str]:
    """Every ZooKeeper voter port that accepts a connection ("server.N host:port (what)")."""
    async def probe(sid, host, port, what):
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, asyncio.TimeoutError):
            return None
        w.close()
        return f"server.{sid} {host}:{port} ({what} port)"
    checks = []
    for sid, q in sorted(voters.items()):
        for host, qport, eport in q.addresses():      # every address of a multi-address line
            checks += [probe(sid, host, qport, "quorum"), probe(sid, host, eport, "election")]
        if q.client_port is not None:
            checks.append(probe(sid, q.host, q.client_port, "client"))
    return [r for r in await asyncio.gather(*checks) if r is not None]


def coord_members(cfg: ServerConfig) -> ServerConfig:
    """The configuration after the take-over: the observer lines (the coord servers) become coord's
    own voters; the ZooKeeper servers are gone."""
    out = copy.copy(cfg)
    out.servers = {sid: dataclasses.replace(q, role="participant") for sid, q in cfg.servers.items()
                   if q.role == "observer"}
    out.peer_protocol = "zab"
    return out


def takeover_marker(cfg: ServerConfig):
    return cfg.data_dir / TAKEOVER_MARKER


def preload_member() -> None:
    """Import what the coord member runs on (Zab's peer, roles, sequencers) once the observer serves,
    not at the take-over: loading these modules took ~200 ms of the switch under load (PyPy, load
    45), time the clients wait through. Not at start either: ~45 ms of CPU before the first join."""
    import coord.core.reconfig  # noqa: F401
    import coord.core.zab.leader  # noqa: F401
    import coord.core.zab.learner  # noqa: F401
    import coord.core.zab.membership  # noqa: F401
    import coord.core.zab.peer  # noqa: F401
    import coord.core.zab.sequencer  # noqa: F401
    import coord.jute.records  # noqa: F401


class Steps:
    """How long each step of a take-over took (ms), for the log: the outage's breakdown."""
    def __init__(self):
        self.t = time.monotonic()
        self.done: list[tuple[str, float]] = []

    def mark(self, what: str) -> None:
        now = time.monotonic()
        self.done.append((what, (now - self.t) * 1000))
        self.t = now

    def __str__(self) -> str:
        return ", ".join(f"{what} +{ms:.1f} ms" for what, ms in self.done)


class JoinTimeline:
    """The first join's steps, each logged once at INFO with the seconds since the process started
    (coord.runtime.process_age_s): where a join's time goes, waiting or working (docs/migration.md)."""

    def __init__(self):
        self.seen: set[str] = set()

    def mark(self, step: str, detail: str = "") -> None:
        if step not in self.seen:
            self.seen.add(step)
            log.info("join timeline: +%.3f s %s%s", runtime.process_age_s(), step, detail)


class SnapCost:
    """Where a SNAP's wall time went on the loop: decoding (obs.received; its CPU time too), the
    collections between chunks, and waiting for bytes."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.decode = self.decode_cpu = self.gc = self.gc_cpu = 0.0
        self.bytes = 0

    def __str__(self) -> str:
        wall = time.perf_counter() - self.t0
        return (f"{self.bytes / 1e6:.0f} MB in {wall:.2f} s: decoding {self.decode:.2f} s (CPU {self.decode_cpu:.2f} s), "
                f"collections {self.gc:.2f} s (CPU {self.gc_cpu:.2f} s), waiting for bytes {wall - self.decode - self.gc:.2f} s")


class ZkObserverNode(CoordServer):
    extra_words = frozenset({TAKEOVER_WORD.encode()})

    def __init__(self, cfg: ServerConfig):
        me = cfg.servers.get(cfg.myid) if cfg.myid is not None else None
        if me is None:
            raise ZkObserverError("coord.peerProtocol=zookeeper needs dataDir/myid and this server's server.N line")
        if me.role != "observer":
            raise ZkObserverError(f"server.{cfg.myid} must end in :observer: coord joins a ZooKeeper ensemble "
                                  "as an observer only")
        self.voters = {s: q for s, q in cfg.servers.items() if q.role == "participant"}
        if not self.voters:
            raise ZkObserverError("no ZooKeeper voters (server.N=...:participant lines) to observe")
        if me.client_port is not None:
            cfg.client_port = me.client_port
            if me.client_host:
                cfg.client_port_address = me.client_host
        super().__init__(cfg)
        self.sid = cfg.myid
        self.me = me
        self.observer: ZkObserver | None = None
        self.writer: LeaderLink | None = None    # the link to the ZooKeeper leader
        self.peer_task: asyncio.Task | None = None
        self.election_server: asyncio.base_events.Server | None = None
        self.quorum_server: asyncio.base_events.Server | None = None
        self.fatal = asyncio.Event()
        self.fatal_reason = ""
        self.leader: int | None = None
        self.config_text = render_config(cfg)
        self.took_over = asyncio.Event()
        self.timeline = JoinTimeline()
        self.held_log: list | None = None     # appends after a SNAP, until its tree is on disk
        self.snap_gen = 0                     # SNAPs and resets so far: a snapshot of an older tree is void
        self.sync_snapshot: asyncio.Task | None = None
        self.taking_over = False
        self.in_place = False
        self.learner_sasl = quorum_sasl_credentials(cfg)   # (user, password) or None: quorum SASL
        self.qtls = None                 # quorum TLS (sslQuorum=true): both ZooKeeper ports dialled with TLS
        if cfg.ssl_quorum:
            from coord.aio.quorum_tls import QuorumTls
            from coord.aio.zoocfg import quorum_tls_config
            self.qtls = QuorumTls(quorum_tls_config(cfg))

    def load(self) -> None:
        try:
            rec = self.storage.recover()
            self.epochs = EpochStore(self.storage.snap_dir, sync=self.cfg.force_sync)
            accepted, current = self.epochs.read()
        except (RecoveryError, EpochFileError) as e:
            log.critical("cannot start: %s", e)
            raise SystemExit(f"coord: cannot start: {e}") from None
        core = ServerCore(core_config(self.cfg), rec.tree)
        core.config.quorum = True
        core.start(wall_ms(), mono_ms())
        self.core = core
        from coord.aio.ensemble_node import zab_config
        self.observer = ZkObserver(self.sid, core, max_buffer=self.cfg.jute_maxbuffer + 1024,
                                   accepted_epoch=accepted, current_epoch=current, hold_ms=self.hold_ms(),
                                   history=zab_config(self.cfg).history_txns)
        if self.observer.membership is not None and self.cfg.reconfig_enabled:   # applied before a restart
            self._adopt_membership(*self.observer.membership)
            self.observer.membership = None
        log.info("server %d: recovered zxid 0x%x (%d znodes, %d sessions); accepted epoch %d, current epoch %d",
                 self.sid, rec.tree.last_zxid, rec.tree.node_count(), len(rec.tree.sessions), accepted, current)

    async def start(self) -> None:
        await super().start()
        me = self.me
        tls = self.qtls.server_ctx() if self.qtls is not None else None
        self.election_server = await asyncio.start_server(self._election_accept, host=me.host, port=me.election_port,
                                                          reuse_address=True, ssl=tls)
        # An observer needs no quorum port, but the coord member it becomes at the take-over does:
        # held from now on, no outgoing connection can get it as its ephemeral source port meanwhile.
        self.quorum_server = await asyncio.start_server(self._quorum_accept, host=me.host, port=me.quorum_port,
                                                        reuse_address=True, ssl=tls)
        log.info("server %d: observing ZooKeeper voters %s; clients on port %d", self.sid,
                 ",".join(str(s) for s in sorted(self.voters)), self.port)
        self.timeline.mark("recovered, ports open")
        self.peer_task = self.loop.create_task(self._peer_loop())

    async def stop(self) -> None:
        if self.sync_snapshot is not None:
            self.sync_snapshot.cancel()
        if self.peer_task is not None:
            self.peer_task.cancel()
            try:
                await self.peer_task
            except (asyncio.CancelledError, Exception):
                pass
        for srv in (self.election_server, self.quorum_server):
            if srv is not None:
                srv.close()
        if self.writer is not None:
            self.writer.close()
        await super().stop()

    def hold_ms(self) -> int:
        """How long clients are held once the ZooKeeper leader is gone (for a take-over to keep them):
        syncLimit ticks, the time a ZooKeeper learner waits for a silent leader."""
        return max(2000, self.cfg.tick_ms * self.cfg.sync_limit)

    # -- effects ------------------------------------------------------------------------------------
    def flush(self) -> None:
        obs = self.observer
        if obs is not None:
            obs.tick()
            if obs.membership is not None:
                if self.cfg.reconfig_enabled:
                    self._adopt_membership(*obs.membership)
                obs.membership = None
            if obs.epochs_changed:
                obs.epochs_changed = False
                self.epochs.write(obs.accepted_epoch, obs.current_epoch)
            if obs.disk:
                disk, obs.disk = obs.disk, []
                self.flushing = True      # a write completes (on_durable) inside: no nested flush
                try:
                    self._perform_disk(disk)
                finally:
                    self.flushing = False
            if obs.out:
                if self.writer is not None and not self.writer.is_closing():
                    self.writer.write(b"".join(obs.out))
                obs.out.clear()
            for level, msg in obs.logs:
                log.log(_LEVELS.get(level, logging.INFO), "%s", msg)
            obs.logs.clear()
            if obs.close is not None and self.writer is not None:
                self.writer.close()
            if obs.fatal is not None and not self.fatal.is_set():
                self.fatal_reason = obs.fatal
                self.fatal.set()
        super().flush()

    def _adopt_membership(self, voters: dict, observers: dict, version: int, data: bytes) -> None:
        """A committed ZooKeeper reconfig: the voters we look for the leader among (from the next
        search on), what our notifications carry, and the servers take-over turns into coord's
        members (the observer lines) all follow it, as a ZooKeeper observer's QuorumVerifier does;
        like ZooKeeper's (QuorumPeer.processReconfig), only with reconfigEnabled=true in our zoo.cfg."""
        self.voters = dict(voters)
        self.cfg.servers = {**observers, **voters}
        self.config_text = data
        log.info("server %d: ZooKeeper configuration 0x%x adopted: voters %s, observers %s", self.sid, version,
                 ",".join(map(str, sorted(voters))), ",".join(map(str, sorted(observers))))

    def _perform_disk(self, effects: list[tuple]) -> None:
        """The observer's disk effects in order. Appends are group-written (fsynced by the log when
        forceSync), or held in memory while a SNAP's tree is not yet on disk; a ("snap", z) starts
        holding (the older copy on disk stays whole); ("snapshot",) writes the tree in the background
        (coord's forked snapshot) and, once it is durable, restarts the log after it with what was
        held; ("reset",) drops what is on disk (the observe loop has drained the log first)."""
        records: list = []
        for e in effects:
            kind = e[0]
            if kind == "append":
                (self.held_log if self.held_log is not None else records).append((e[1], e[2]))
            elif kind == "snap":
                records = []           # superseded by the SNAP's tree
                self.held_log = []
                self.snap_gen += 1
            elif kind == "snapshot":
                self._write_records(records)
                records = []
                self._start_sync_snapshot()
            elif kind == "reset":
                records = []
                self.held_log = None
                self.snap_gen += 1
                self._restart_log(0, None)
        self._write_records(records)

    def _write_records(self, records: list) -> None:
        if not records:
            return
        txnlog = self.txnlog
        if txnlog.force_sync or txnlog.pending():
            txnlog.append(records)
        else:
            txnlog.write(records)

    def _restart_log(self, z: int, keep) -> None:
        """What is on disk from now on is the snapshot `keep` at z (None: nothing) and the log after z."""
        from coord.aio.snapshots import list_snapshots
        for sz, path in list_snapshots(self.storage.snap_dir):
            if (sz > z or keep is None) and path != keep:
                path.unlink()
        txnlog = self.txnlog
        if txnlog.last_zxid > z:
            txnlog.truncate_after(z)
        txnlog.start(z)

    def _start_sync_snapshot(self) -> None:
        if self.sync_snapshot is None or self.sync_snapshot.done():
            self.sync_snapshot = self.loop.create_task(self._sync_snapshot(self.snap_gen))

    async def _sync_snapshot(self, gen: int) -> None:
        """Write the tree a SNAP gave us (as it is now, exact), then the held appends after it."""
        taker = self.storage.snapshots
        t0 = time.monotonic()
        # The first txn after a SNAP often verifies before UPTODATE: the fork of the whole process
        # (150-200 ms for a 1M tree at load 10) and its child's CPU wait until we serve (or 10 s).
        while not self.core.serving and gen == self.snap_gen and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.05)
        while True:
            while taker.in_progress:             # a periodic snapshot is being written: after it
                await asyncio.sleep(0.05)
            await self.txnlog.drain()
            if gen != self.snap_gen:
                return
            tree = self.core.tree
            z = tree.last_zxid
            path = await taker.take(tree)
            if gen != self.snap_gen:             # superseded by a newer SNAP or a reset meanwhile
                if path is not None:
                    path.unlink(missing_ok=True)
                return
            if path is not None:
                break
            log.warning("server %d: the snapshot of the leader's tree failed; trying again in 1 s", self.sid)
            await asyncio.sleep(1.0)
        held, self.held_log = self.held_log or [], None
        self._restart_log(z, path)
        self._write_records([r for r in held if r[0].zxid > z])
        log.info("server %d: the leader's tree is on disk as snapshot 0x%x (%.1f s after it was asked for; "
                 "%d txns were held meanwhile)", self.sid, z, time.monotonic() - t0, len(held))

    async def snapshot_durable(self) -> None:
        """Before the state on disk is relied on (a take-over): the SNAP's tree written, if not yet."""
        if self.held_log is None:
            return
        if self.sync_snapshot is None or self.sync_snapshot.done():
            self.observer.snapshot_due = False
            self._start_sync_snapshot()
        while self.held_log is not None and self.sync_snapshot is not None:
            await asyncio.shield(self.sync_snapshot)
            if self.held_log is not None:
                self._start_sync_snapshot()

    # -- the peer loop: find the leader, observe it, again after it is lost --------------------------
    async def _peer_loop(self) -> None:
        while not self.fatal.is_set():
            try:
                leader = await self._find_leader()
                await self._observe(leader)
            except asyncio.CancelledError:
                raise
            except Exception as e:   # a peer that misbehaves must not end the process
                log.warning("observer loop: %s: %s", type(e).__name__, e)
            await asyncio.sleep(RETRY_S)

    async def _find_leader(self) -> int:
        finder = LeaderFinder(self.sid, set(self.voters), self.config_text)
        decided: asyncio.Future = self.loop.create_future()
        tasks = [self.loop.create_task(self._ask_voter(sid, finder, decided)) for sid in self.voters]
        try:
            return await decided
        finally:
            # not awaited: each ends at its next step (the leader is decided), and waiting for the
            # slowest to wind down took up to 0.2 s of the join (measured 9-212 ms at load 10)
            for t in tasks:
                t.cancel()

    async def _ask_voter(self, sid: int, finder: LeaderFinder, decided: asyncio.Future) -> None:
        q = self.voters[sid]
        my_addr = f"{self.me.host}:{self.me.election_port}"
        while not decided.done():
            writer = None
            try:
                reader, writer = await asyncio.wait_for(self._dial_any(q, election=True), 2 * len(q.addresses()))
                writer.write(Q.initial_message(self.sid, my_addr))
                await self._authenticate(reader, writer, sid)
                while not decided.done():
                    writer.write(finder.notification().encode())
                    await writer.drain()
                    try:
                        n = await asyncio.wait_for(self._read_notification(reader), 1.0)
                    except asyncio.TimeoutError:
                        continue
                    self.timeline.mark("first election notification", f" (server {sid})")
                    leader = finder.on_notification(sid, n)
                    if leader is not None and not decided.done():
                        log.info("ZooKeeper leader is server %d (epoch %d), says server %d", leader, n.peer_epoch, sid)
                        self.timeline.mark("leader found")
                        decided.set_result(leader)
                    elif n.state not in (Q.LEADING, Q.FOLLOWING):
                        await asyncio.sleep(RETRY_S)
            except QuorumAuthError as e:
                finder.forget(sid)
                log.error("election link to ZooKeeper server %d: %s", sid, e)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                finder.forget(sid)
                log.debug("election link to %d: %s", sid, e)
            except Q.QuorumWireError as e:
                finder.forget(sid)
                log.error("election link to ZooKeeper server %d closed: %s", sid, e)
            finally:
                if writer is not None:
                    writer.close()
            if not decided.done():
                await asyncio.sleep(RETRY_S)

    async def _dial_any(self, q, election: bool):
        """Each address of a (multi-address) server line in turn, as ZooKeeper's learner and
        QuorumCnxManager do: the first that answers. The election port: (reader, writer); the
        quorum port: a LeaderLink."""
        last: Exception | None = None
        for host, qport, eport in q.addresses():
            try:
                if not election:
                    return await asyncio.wait_for(self._dial_link(host, qport), 2)
                return await asyncio.wait_for(self._dial(host, eport), 2)
            except (OSError, asyncio.TimeoutError) as e:
                last = e
                log.debug("server %d at %s:%d: %s", q.sid, host, eport if election else qport, e)
        raise last if last is not None else OSError(f"server {q.sid} has no address")

    def _dial(self, host: str, port: int):
        """A connection to a ZooKeeper server's election or quorum port: TLS with our certificate
        under sslQuorum=true (ZooKeeper's QuorumX509Util: mutual, the server's certificate checked
        against ssl.quorum.trustStore and, with hostnameVerification, against the address dialled)."""
        if self.qtls is None:
            return asyncio.open_connection(host, port)
        return asyncio.open_connection(host, port, ssl=self.qtls.client_ctx(), server_hostname=host,
                                       ssl_handshake_timeout=self.qtls.settings.handshake_timeout_ms / 1000)

    async def _dial_link(self, host: str, port: int) -> LeaderLink:
        """The quorum port, TLS as in _dial, received into the observer's stream (coord.aio.leaderlink)."""
        kw = {}
        if self.qtls is not None:
            kw = dict(ssl=self.qtls.client_ctx(), server_hostname=host,
                      ssl_handshake_timeout=self.qtls.settings.handshake_timeout_ms / 1000)
        max_buffer = self.cfg.jute_maxbuffer + 1024
        _, link = await self.loop.create_connection(lambda: LeaderLink(max_buffer), host, port, **kw)
        return link

    async def _authenticate(self, reader, writer, sid: int) -> None:
        """SaslQuorumAuthLearner's exchange (coord.core.zkpeer.quorum_auth) when quorum SASL is on."""
        if self.learner_sasl is None:
            return
        auth = DigestMD5Learner(*self.learner_sasl, cnonce=os.urandom(24).hex().encode())
        out = auth.first()
        while out is not None:
            writer.write(out)
            await writer.drain()
            status, n = quorum_auth_header(await reader.readexactly(16))
            token = await reader.readexactly(n) if n > 0 else b""
            out = auth.step(status, token)
        log.info("quorum SASL (DIGEST-MD5) with ZooKeeper server %d complete", sid)

    @staticmethod
    async def _read_notification(reader: asyncio.StreamReader) -> Q.Notification:
        n = _LEN.unpack(await reader.readexactly(4))[0]
        if n <= 0 or n > Q.PACKETMAXSIZE:
            raise Q.QuorumWireError(f"election frame of {n} bytes")
        return Q.parse_notification(await reader.readexactly(n))

    async def _election_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A voter dials us (it has a reply for us): its sid is below ours, so ZooKeeper's rule is
        that we dial it instead, which the finder does. Read its InitialMessage and close."""
        try:
            buf = b""
            while True:
                got = Q.parse_initial(buf)
                if got is not None:
                    log.debug("election dial from server %d closed: we dial lower sids", got[0])
                    break
                chunk = await asyncio.wait_for(reader.read(4096), 5)
                if not chunk:
                    break
                buf += chunk
        except (OSError, asyncio.TimeoutError, Q.QuorumWireError) as e:
            log.warning("election port: closing a dial: %s", e)
        finally:
            writer.close()

    @staticmethod
    async def _quorum_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Nobody syncs from an observer: a dial to its quorum port is closed."""
        writer.close()

    async def _observe(self, leader: int) -> None:
        q = self.voters[leader]
        obs = self.observer
        idle_s = max(1.0, self.cfg.tick_ms * self.cfg.sync_limit / 1000)
        link = await asyncio.wait_for(self._dial_any(q, election=False), self.cfg.tick_ms * self.cfg.init_limit / 1000)
        try:
            await asyncio.wait_for(self._authenticate(link, link, leader), self.cfg.tick_ms * self.cfg.init_limit / 1000)
        except (QuorumAuthError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            link.close()
            raise ZkObserverError(f"quorum SASL with ZooKeeper leader {leader} failed: {e!r}") from None
        self.writer = link
        self.leader = leader
        why = "closed by the leader"
        snap_bytes = 0
        cost: SnapCost | None = None
        timeline = self.timeline
        try:
            self.tick_clock()
            obs.link_up(leader)
            link.adopt(obs.stream)          # the leader's bytes land in the observer's stream
            self.flush()
            timeline.mark("quorum link up, OBSERVERINFO sent")
            while obs.close is None and obs.fatal is None:
                try:
                    n = await link.wait(idle_s)
                except asyncio.TimeoutError:
                    why = f"nothing from the leader for {idle_s:.1f}s"
                    break
                if not n:
                    if link.error is not None:
                        why = str(link.error)
                    break
                self.tick_clock()
                was_snap = obs.phase == "snapshot"
                if cost is not None or was_snap:
                    w0, c0 = time.perf_counter(), time.thread_time()
                    obs.received()
                    cost.decode += time.perf_counter() - w0
                    cost.decode_cpu += time.thread_time() - c0
                    cost.bytes += n
                else:
                    obs.received()
                if obs.phase == "snapshot" and not was_snap and cost is None:
                    cost = SnapCost()
                    timeline.mark("SNAP started")
                if _PYPY and (was_snap or obs.phase == "snapshot"):
                    snap_bytes += n
                    if snap_bytes >= SNAP_COLLECT_BYTES or obs.phase != "snapshot":
                        snap_bytes = 0     # not serving yet: nobody waits on the pause
                        g0, c0 = time.perf_counter(), time.thread_time()
                        gc.collect()
                        runtime.release_free_memory()
                        cost.gc += time.perf_counter() - g0
                        cost.gc_cpu += time.thread_time() - c0
                if cost is not None and obs.phase != "snapshot":
                    log.info("server %d: SNAP stream read and loaded: %s", self.sid, cost)
                    timeline.mark("SNAP received and loaded")
                    cost = None
                if obs.phase == "serving" and "serving (UPTODATE)" not in timeline.seen:
                    timeline.mark("serving (UPTODATE)")
                    self.loop.call_later(2.0, preload_member)     # ~45 ms of imports, off the join's path
                if obs.verified:
                    timeline.mark("first txn digest verified")
                if self.txnlog.pending() and any(e[0] != "append" for e in obs.disk):
                    await self.txnlog.drain()
                self.flush()
            if obs.close is not None:
                why = obs.close
        except OSError as e:
            why = str(e)
        finally:
            self.writer = None
            link.close()
            self.tick_clock()
            obs.link_down(why)
            self.flush()

    # -- four-letter words and mntr --------------------------------------------------------------------
    def four_letter(self, proto, word: str) -> None:
        if word == TAKEOVER_WORD:
            peer = proto.transport.get_extra_info("peername") or ("?",)
            if not takeover_allowed_from(str(peer[0]), self.cfg):
                log.warning("refused %s from %s: only from loopback or a host of the ensemble's server lines",
                            TAKEOVER_WORD, peer[0])
                proto.transport.write(f"{TAKEOVER_WORD} is not executed from {peer[0]}: only from loopback "
                                      "or a host of the ensemble's server lines\n".encode())
                proto.transport.close()
                return
            arg = bytes(getattr(proto, "head", b"") or b"").decode(errors="replace").strip()
            self.loop.create_task(self._take_over_word(proto, arg))
            return
        if not self.core.serving and word not in ("ruok", "envi", "conf", "isro", "mntr"):
            proto.transport.write(NOT_SERVING.encode())
            proto.transport.close()
            return
        super().four_letter(proto, word)

    async def _take_over_word(self, proto, arg: str = "") -> None:
        leader = None
        if arg == "zxid":        # asked first, to name the leader: nothing changes
            proto.transport.write(f"zxid 0x{self.core.tree.last_zxid:x}\n".encode())
            proto.transport.close()
            return
        if arg == "members":     # the ensemble as this observer knows it now (zoo.cfg, then every
            # reconfig it applied) and its last zxid: nothing changes
            proto.transport.write(self.config_text + f"\nzxid=0x{self.core.tree.last_zxid:x}\n".encode())
            proto.transport.close()
            return
        if arg:
            try:
                leader = int(arg.removeprefix("leader="))
            except ValueError:
                proto.transport.write(f"refused: {TAKEOVER_WORD} takes leader=N, not {arg!r}\n".encode())
                proto.transport.close()
                return
        ok, msg = await self.take_over(leader)
        proto.transport.write((("ok: " if ok else "refused: ") + msg + "\n").encode())
        proto.transport.close()

    async def take_over(self, leader: int | None = None) -> tuple[bool, str]:
        """Leave the ZooKeeper ensemble and become a member of coord's own: only once no ZooKeeper
        voter answers (the operator has stopped them all), with our state durable on disk. With
        `leader` named (the member with the highest zxid) it happens in this running server: the
        clients stay connected and what they asked meanwhile is answered by coord's Zab
        (coord.aio.ensemble_node.become_member); without, the server restarts as a member and elects."""
        if self.taking_over:
            return True, f"server {self.sid} is already taking over"
        obs = self.observer
        t0 = time.monotonic()
        log.info("server %d: take-over asked (leader %s)", self.sid, leader)
        if obs.current_epoch == 0 or self.core.tree.last_zxid == 0:
            return False, (f"server {self.sid} has never been synced by a ZooKeeper leader (zxid 0x0): "
                           "it holds no state to take over with")
        answering = await answering_voters(self.voters)
        log.info("server %d: take-over: %d ZooKeeper voter ports answer (checked in %.1f ms)", self.sid,
                 len(answering), (time.monotonic() - t0) * 1000)
        if answering:
            return False, still_answering(answering)
        members = coord_members(self.cfg)
        if leader is not None and leader not in members.servers:
            return False, f"leader={leader} is not one of the coord servers ({sorted(members.servers)})"
        self.taking_over = True
        steps = Steps()
        if self.peer_task is not None:
            self.peer_task.cancel()
            try:
                await self.peer_task
            except (asyncio.CancelledError, Exception):
                pass
        steps.mark("observer stopped")
        self.flush()
        await self.snapshot_durable()
        await self.txnlog.drain()
        steps.mark("log drained")
        lines = "".join(f"server.{sid}={q.spec()}\n" for sid, q in sorted(members.servers.items()))
        marker = takeover_marker(self.cfg)
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(f"# written by coord's take-over at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
                       + lines)
        tmp.replace(marker)
        steps.mark("marker written")
        msg = (f"server {self.sid} takes over at zxid 0x{self.core.tree.last_zxid:x} (ZooKeeper epoch "
               f"{obs.current_epoch}) with {len(self.core.tree.sessions)} sessions; coord members "
               + ",".join(str(s) for s in sorted(members.servers)))
        if leader is not None:
            await self._become_member(members, leader, steps)
            msg += f"; leader {leader}, clients kept"
        log.warning("%s", msg)
        log.info("server %d: take-over steps: %s", self.sid, steps)
        self.took_over.set()
        return True, msg

    async def _become_member(self, members: ServerConfig, leader: int, steps: "Steps") -> None:
        from coord.aio.ensemble_node import become_member
        from coord.core.zab.api import DurableState
        obs = self.observer
        if obs.phase == "holding":          # the switch must not end the hold half-way
            obs.hold_until = max(obs.hold_until, self.core.mono_ms + 60_000)
        for srv in (self.election_server, self.quorum_server):   # the member's transport binds them
            if srv is not None:
                srv.close()
                await srv.wait_closed()
        self.election_server = self.quorum_server = None
        steps.mark("peer ports closed")
        self.flush()
        await self.txnlog.drain()
        tree = self.core.tree
        recent = list(obs.recent or ())
        ds = DurableState(obs.accepted_epoch, obs.current_epoch, tree.last_zxid, 0,
                          committed=recent, committed_base=obs.recent_base if recent else 0)
        self.in_place = True
        revals: list = []

        def carried():
            requests, syncs, held = obs.handed_over()
            revals.extend(held)
            return requests, syncs
        node = await become_member(self, members, ds, leader, carried)
        steps.mark("coord member started")
        core = node.core
        for conn_id, sid, timeout in revals:     # held reconnects: the session is ours to judge now
            core.finish_revalidation(conn_id, sid, timeout, sid in core.tree.sessions)
        node.flush()

    def mode(self) -> str:
        return "observer"

    def mode_mntr_rows(self) -> list[tuple[str, object]]:
        obs = self.observer
        rows: list[tuple[str, object]] = [("zk_peer_state", "observing - broadcast" if self.core.serving
                                           else "observing - sync")]
        if obs is not None:
            rows += list(obs.info().items())
        return rows


async def run_observer(cfg: ServerConfig) -> None:
    from coord.aio.ensemble_node import run_member
    if takeover_marker(cfg).exists():
        log.warning("server %s took over from ZooKeeper earlier (%s): running as a coord ensemble member; "
                    "remove coord.peerProtocol and the ZooKeeper server lines from zoo.cfg",
                    cfg.myid, takeover_marker(cfg))
        await run_member(coord_members(cfg))
        return
    try:
        node = ZkObserverNode(cfg)
    except ZkObserverError as e:
        raise SystemExit(f"coord: {e}") from None
    node.timeline.mark("coord imported, observer starting", f" (the server runtime was exec'd at "
                       f"+{os.environ.get(runtime.EXECED_AT, '?')} s; {runtime.describe()})")
    await node.start()
    fatal = node.fatal
    try:
        done = [asyncio.ensure_future(fatal.wait()), asyncio.ensure_future(node.took_over.wait())]
        await asyncio.wait(done, return_when=asyncio.FIRST_COMPLETED)
        for d in done:
            d.cancel()
        if node.took_over.is_set() and node.in_place:
            await run_member(coord_members(cfg), node)   # the same server, now a coord member
            return
        if node.took_over.is_set():
            await asyncio.sleep(0.2)        # the take-over word's answer leaves first
    finally:
        if not node.in_place:
            await node.stop()
    if node.took_over.is_set():
        await run_member(coord_members(cfg))
        return
    raise SystemExit(f"coord: server {cfg.myid} stopped: {node.fatal_reason}")
