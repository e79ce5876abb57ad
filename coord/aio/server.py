"""The asyncio shell around ServerCore: client sockets, the txn log, the clock, four-letter words.

It moves bytes and performs effects in a fixed order and makes no protocol decision. After every
input (bytes, an fsync completion, a tick) it schedules one flush for the end of the loop iteration,
so all replies produced by one batch of inputs leave in one write per connection and all txns
prepared by it go to the log in one batch (group commit).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict

from coord.aio import tls
from coord.aio.limits import ConnectionCap, request_throttle
from coord.aio.fourletter import FourLetterWords
from coord.aio.datadir import RecoveryError, Storage
from coord.aio.nonces import NoncePool
from coord.aio.zoocfg import ALL_4LW, ServerConfig, enforced_schemes
from coord.core.config import CoreConfig
from coord.core.sasl import SaslConfig
from coord.core.server import ServerCore
from coord.core.throttle import BlueThrottleConfig
from coord.jute.frames import FrameSplitter, FrameTooLarge
from coord.jute.protocol import Err

log = logging.getLogger("coord.server")

_4LW = frozenset(w.encode() for w in ALL_4LW)
TICK_S = 0.05
# Log writes one flush makes at most (forceSync=no) when each commit lets the request throttler
# admit more: bounded so other connections are read in between.
LOG_ROUNDS = 64
# Requests taken from one connection per turn of the loop. One read can hold thousands (a client
# that pipelines, like a Kafka controller's batches): prepared, logged and applied as one batch, they
# would hold every other client's request behind them for the whole batch. The rest wait, read
# already, for the next turn, after the other connections' (ZooKeeper's selector threads likewise
# take one request per connection per pass).
MAX_FRAMES_PER_TURN = 64


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def core_config(cfg: ServerConfig) -> CoreConfig:
    return CoreConfig(
        server_id=cfg.myid or 0,
        tick_ms=cfg.tick_ms,
        min_session_timeout_ms=cfg.min_session_timeout_ms,
        max_session_timeout_ms=cfg.max_session_timeout_ms,
        extended_types=cfg.extended_types,
        super_digest=cfg.super_digest,
        max_buffer=cfg.jute_maxbuffer,
        container_check_interval_ms=cfg.container_check_interval_ms,
        local_sessions=cfg.local_sessions_enabled,
        local_sessions_upgrading=cfg.local_sessions_upgrading_enabled,
        reconfig_enabled=cfg.reconfig_enabled,
        standalone_enabled=cfg.standalone_enabled,
        sasl=sasl_config(cfg),
        enforce_auth=enforced_schemes(cfg),
        enforce_quota=cfg.limits["enforceQuota"],
        connection_throttle=BlueThrottleConfig.from_limits(cfg.limits),
        request_throttle=request_throttle(cfg.limits),
        random=random.random,
    )


def sasl_config(cfg: ServerConfig) -> SaslConfig | None:
    """The core's SASL settings from zoo.cfg and the JAAS file (None: no SASL server)."""
    if cfg.sasl_users is None:
        return None
    realm = ""
    if cfg.sasl_gss is not None:   # GSSAPI only, as ZooKeeper with a Kerberos Subject
        from coord.aio.gss import default_realm
        realm = default_realm(cfg.krb5_conf)
    return SaslConfig(gss=cfg.sasl_gss, default_realm=realm,
                      users=dict(cfg.sasl_users), super_users=frozenset(cfg.sasl_super_users.values()),
                      super_password=cfg.sasl_super_password, remove_host=cfg.kerberos_remove_host,
                      remove_realm=cfg.kerberos_remove_realm,
                      allow_failed_clients=cfg.allow_sasl_failed_clients,
                      required="sasl" in enforced_schemes(cfg),
                      nonce=NoncePool())


READ_BUFFER_BYTES = 256 * 1024   # asyncio's own recv size for a plain Protocol


class ClientProtocol(asyncio.BufferedProtocol):
    """A client connection. Buffered: the transport reads into the server's one read buffer
    (get_buffer) and hands over how much it read (buffer_updated), which is parsed before the call
    returns, so every connection can share it. A plain Protocol's transport instead allocates
    recv(256 KiB) for every read; on PyPy that is a non-moving 256 KiB object per read, and those
    objects, though shrunk at once, were ~75 MB of every ~3 s major-collection cycle under 17,652
    setData/s: most of the major GC work whose steps the requests over p99 waited on (issue 17)."""
    __slots__ = ("server", "conn_id", "transport", "splitter", "first", "head", "paused", "reading_paused",
                 "remote", "ip", "backlog", "listener")

    def __init__(self, server: "CoordServer", conn_id: int):
        self.server = server
        self.conn_id = conn_id
        self.transport = None
        self.splitter = FrameSplitter(server.cfg.jute_maxbuffer)
        self.first = True
        self.head = b""
        self.paused = False
        self.reading_paused = False
        self.remote = ""
        self.ip = ""
        self.backlog: list[bytes] = []   # whole frames read but not yet served (MAX_FRAMES_PER_TURN)
        self.listener = None             # "plain" / "secure" once admitted under maxCnxns

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.ip = str(peer[0])
        self.remote = f"{peer[0]}:{peer[1]}"
        srv = self.server
        listener = srv.listener_of(transport)
        if not srv.cnxn_cap.admit(listener):   # maxCnxns first, as ZooKeeper's factories
            srv.rejected += 1
            transport.abort()
            return
        self.listener = listener
        limit = srv.cfg.max_client_cnxns
        if limit > 0 and srv.per_ip[self.ip] >= limit:
            log.warning("too many connections from %s (max %d); closing", self.ip, limit)
            srv.rejected += 1
            srv.cnxn_cap.release(listener)
            self.listener = None
            transport.abort()
            return
        srv.per_ip[self.ip] += 1
        srv.protocols[self.conn_id] = self
        srv.core.connection_made(self.conn_id, self.remote, transport.get_extra_info("identities") or ())

    def get_buffer(self, sizehint: int):
        return self.server.read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.server.read_view[:nbytes])

    def data_received(self, data) -> None:
        """data: bytes, or a memoryview of the shared read buffer that must not be kept (the frame
        splitter copies what it keeps)."""
        srv = self.server
        if self.first:
            # A four-letter word is the first 4 bytes of a connection, however they are segmented.
            data = self.head + data
            if len(data) < 4:
                self.head = data
                return
            self.first = False
            self.head = b""
            if data[:4] in _4LW or data[:4] in srv.extra_words:
                self.head = data[4:]   # what followed the word (an argument of coord's own words)
                srv.four_letter(self, data[:4].decode())
                return
        try:
            frames = self.splitter.feed(data)
        except FrameTooLarge as e:
            log.warning("closing %s: %s (jute.maxbuffer %d)", self.remote, e, srv.cfg.jute_maxbuffer)
            srv.large_rejected += 1
            self.transport.abort()
            return
        if self.backlog:
            self.backlog += frames   # read in the same turn as the pause: served after the rest
            return
        self.serve(frames)

    def serve(self, frames: list[bytes]) -> None:
        """Hand up to MAX_FRAMES_PER_TURN frames to the core; keep the rest for a later turn. With
        the request throttler on, it is the backlog: every frame goes to the core, which holds what
        may not enter yet (up to the queue bound, _serve_bounded), so a connection that closes
        finds its waiting requests held and they are dropped as stale, as in ZooKeeper."""
        srv = self.server
        core = srv.core
        turn = MAX_FRAMES_PER_TURN if core.req_throttle is None else len(frames)
        if len(frames) > turn:
            if not self.backlog:
                self.transport.pause_reading()
                srv.backlogged.add(self)
            self.backlog = frames[turn:]
            frames = frames[:turn]
        elif self.backlog:
            self.backlog = []
            srv.backlogged.discard(self)
            self.maybe_resume_reading()
        srv.tick_clock()
        if core.req_throttle is None:
            for payload in frames:
                core.frame(self.conn_id, payload)
        else:
            self._serve_bounded(frames)
        conn = core.conns.get(self.conn_id)
        if conn is not None and core.queued(conn) >= srv.max_queued and not self.reading_paused:
            # Bounded per-connection queue: stop reading until its replies drain (as ZooKeeper throttles).
            self.reading_paused = True
            self.transport.pause_reading()
            srv.throttled.add(self.conn_id)
        srv.input_done()

    def _serve_bounded(self, frames: list[bytes]) -> None:
        """With the request throttler on, frames it holds count toward the connection's bound too, and
        it closes a connection that goes past it: stop at the bound, keep the rest for later."""
        srv = self.server
        core = srv.core
        for i, payload in enumerate(frames):
            core.frame(self.conn_id, payload)
            conn = core.conns.get(self.conn_id)
            if conn is None or core.queued(conn) < srv.max_queued:
                continue
            rest = frames[i + 1:]
            if rest:
                if not self.backlog:
                    self.transport.pause_reading()
                    srv.backlogged.add(self)
                self.backlog = rest + self.backlog
            return

    def maybe_resume_reading(self) -> None:
        if not (self.paused or self.reading_paused or self.backlog):
            self.transport.resume_reading()

    def connection_lost(self, exc) -> None:
        srv = self.server
        self.backlog = []
        srv.backlogged.discard(self)
        if self.listener is not None:
            srv.cnxn_cap.release(self.listener)
            self.listener = None
        if srv.protocols.pop(self.conn_id, None) is not None:
            srv.per_ip[self.ip] -= 1
            srv.core.connection_lost(self.conn_id)
            srv.schedule_flush()

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop reading its requests too.
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.backlog:
            self.server.schedule_backlogs()
        self.maybe_resume_reading()


class CoordServer:
    """One standalone coord server on an event loop."""

    extra_words: frozenset = frozenset()   # four-letter words a kind of server adds to ZooKeeper's

    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self.core: ServerCore | None = None
        self.storage = Storage.from_config(cfg)
        self.txnlog = self.storage.txnlog
        self.protocols: dict[int, ClientProtocol] = {}
        self.read_view = memoryview(bytearray(READ_BUFFER_BYTES))   # shared by every ClientProtocol
        self.per_ip: dict[str, int] = defaultdict(int)
        self.next_conn_id = 1
        self.flush_scheduled = False
        self.flushing = False          # inside flush's own synchronous log write
        self.flushes_inline = 0        # reads flushed in their own turn (input_done) ...
        self.flushes_deferred = 0      # ... and reads whose flush waited for the rest of the turn
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.base_events.Server | None = None
        self.secure_server: asyncio.base_events.Server | None = None   # secureClientPort (coord.aio.tls)
        self.tick_task: asyncio.Task | None = None
        self.words = FourLetterWords(self)
        self.started_mono_ms = mono_ms()
        self.rejected = 0
        self.cnxn_cap = ConnectionCap(cfg.limits["maxCnxns"])
        self.auth_failed = 0   # TLS handshakes that failed (ZooKeeper's auth_failed_count)
        self.large_rejected = 0
        self.max_queued = 1000
        self.throttled: set[int] = set()
        self.backlogged: set[ClientProtocol] = set()
        self.backlog_scheduled = False
        self.stopped = asyncio.Event()
        from coord.aio import metrics
        self.metrics = metrics.for_server(self)   # None unless zoo.cfg names the Prometheus provider
        self.ops: list = []                       # operator listeners: /metrics (and the AdminServer)

    # -- lifecycle -------------------------------------------------------------------------------
    def load(self) -> None:
        """Recover the tree from the data dir (coord.aio.datadir); refuse to start if untrusted."""
        t0 = time.monotonic()
        try:
            rec = self.storage.recover()
        except RecoveryError as e:
            log.critical("cannot start: %s", e)
            raise SystemExit(f"coord: cannot start: {e}") from None
        tree = rec.tree
        self.core = ServerCore(core_config(self.cfg), tree)
        self.core.start(wall_ms(), mono_ms())
        if self.metrics is not None:
            self.metrics.on_loaded(rec)
        log.info("loaded snapshot zxid 0x%x + %d logged txns to zxid 0x%x in %.2fs (%d znodes, %d sessions)",
                 rec.snapshot_zxid, rec.replayed, tree.last_zxid, time.monotonic() - t0,
                 tree.node_count(), len(tree.sessions))

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.core is None:
            self.load()
        self.txnlog.on_durable = self._on_durable
        self.txnlog.on_failed = self._on_log_failed
        self.storage.start(self.loop)
        plain, secure = self.client_factories()
        self.server = await self.loop.create_server(
            plain, host=self.cfg.client_port_address, port=self.cfg.client_port,
            reuse_address=True, backlog=1024)
        sock = self.server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("serving on %s:%d (standalone)", sock[0], sock[1])
        self.secure_server = await tls.secure_listener(self.loop, self.cfg, secure)
        self.tick_task = self.loop.create_task(self._ticker())
        await self.start_ops()

    async def start_ops(self) -> None:
        """The operator endpoints: /metrics (coord.aio.metrics: a port that cannot be bound stops the
        start) and the AdminServer (coord.aio.admin: one that cannot is logged and left out)."""
        from coord.aio import admin, metrics
        if self.metrics is not None:
            self.ops.append(await metrics.start_server(self))
            from coord.aio import metrics_switch   # bench only: off unless its env var is set
            metrics_switch.install(self, self.loop or asyncio.get_running_loop())
        a = await admin.start_server(self)
        if a is not None:
            self.ops.append(a)

    async def stop_ops(self) -> None:
        for o in self.ops:
            await o.stop()
        self.ops.clear()

    def client_factories(self):
        """The client listeners' protocol factories (coord.aio.tls), with the limits applied."""
        return tls.client_factories(self.cfg, self._protocol, on_handshake_failure=self._tls_failed,
                                    refuse=self._refuse_tls)

    def _tls_failed(self) -> None:
        self.auth_failed += 1   # ZooKeeper's "Unsuccessful handshake": auth_failed_count

    def _refuse_tls(self, transport) -> bool:
        """maxCnxns before a TLS handshake starts, as ZooKeeper's Netty factory checks it."""
        if self.cnxn_cap.full(self.listener_of(transport)):
            self.rejected += 1
            return True
        return False

    def listener_of(self, transport) -> str:
        """Which listener accepted a connection: the secureClientPort's, or the clientPort's."""
        sec = self.secure_server
        if sec is not None and sec.sockets:
            here = (transport.get_extra_info("sockname") or (None, None))[1]
            if here == sec.sockets[0].getsockname()[1]:
                return "secure"
        return "plain"

    def _protocol(self) -> ClientProtocol:
        cid = self.next_conn_id
        self.next_conn_id += 1
        return ClientProtocol(self, cid)

    async def stop(self) -> None:
        await self.stop_ops()
        if self.tick_task:
            self.tick_task.cancel()
        for listener in (self.server, self.secure_server):
            if listener:
                listener.close()
        for p in list(self.protocols.values()):
            p.transport.abort()
        await self.storage.close()
        self.stopped.set()

    # -- clock -----------------------------------------------------------------------------------
    def tick_clock(self) -> None:
        self.core.set_time(wall_ms(), mono_ms())

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.tick_clock()
            self.core.tick()
            self.schedule_flush()

    # -- effects ---------------------------------------------------------------------------------
    def schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def input_done(self) -> None:
        """One read was handed to the core: flush now if no other callback waits in this loop turn
        (nothing to batch with: a call_soon would only add a turn, an epoll_wait and a chance to be
        preempted before the reply or the peer message leaves), else once, after them. asyncio's
        loop runs what select() returned as one batch (`_ready`); a loop without one (uvloop)
        always defers, as before."""
        if not self.flush_scheduled and not self.flushing and not getattr(self.loop, "_ready", True):
            self.flushes_inline += 1
            self.flush()
        else:
            self.flushes_deferred += 1
            self.schedule_flush()

    def flush(self) -> None:
        self.flush_scheduled = False
        core = self.core
        txnlog = self.txnlog
        for _ in range(LOG_ROUNDS):
            records = core.sequencer.drain_log()
            if not records:
                break
            if txnlog.force_sync or txnlog.pending():
                txnlog.append(records)  # fsync in a thread; the fate comes back through the callbacks
                break
            # forceSync=no: written now, and committed (through _on_durable) before this flush
            # sends what it has, so one loop iteration takes a write from request to reply. A
            # commit may let the request throttler admit the next writes: they go round again.
            self.flushing = True
            try:
                txnlog.write(records)
            finally:
                self.flushing = False
        out, closing = core.drain()
        protocols = self.protocols
        for cid, chunks in out.items():
            p = protocols.get(cid)
            if p is not None:
                p.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        for cid in closing:
            p = protocols.get(cid)
            if p is not None:
                p.transport.close()
        if self.throttled:
            for cid in list(self.throttled):
                p = protocols.get(cid)
                conn = core.conns.get(cid)
                if p is None or conn is None:
                    self.throttled.discard(cid)
                elif core.queued(conn) < self.max_queued // 2:
                    self.throttled.discard(cid)
                    p.reading_paused = False
                    p.maybe_resume_reading()
        if self.backlogged:
            self.schedule_backlogs()
        if core.sequencer.unlogged():
            # A commit above finished a request and the request throttler admitted the next writes:
            # log them on the next turn (ZooKeeper's throttleWake), not on the next tick.
            self.schedule_flush()
        for line in core.log_lines:
            log.info("%s", line)
        core.log_lines.clear()

    def schedule_backlogs(self) -> None:
        if not self.backlog_scheduled:
            self.backlog_scheduled = True
            self.loop.call_soon(self._serve_backlogs)

    def _serve_backlogs(self) -> None:
        """A later turn: the next frames of each connection that had more than a turn's worth. One
        held back by its queue bound waits until its replies drain (the flush after them schedules
        this again); one whose client is not reading its replies, until it does (resume_writing)."""
        self.backlog_scheduled = False
        core = self.core
        self.schedule_flush()     # one flush after all of them (input_done defers to it)
        for p in list(self.backlogged):
            conn = core.conns.get(p.conn_id)
            if p.paused or (conn is not None and core.queued(conn) >= self.max_queued):
                continue
            p.serve(p.backlog)

    def _on_durable(self, zxid: int) -> None:
        self.tick_clock()
        self.core.sequencer.on_logged(zxid)
        if not self.flushing:
            self.flush()
        self.storage.logged(zxid, self.core.tree)

    def _on_log_failed(self, error: OSError, first_zxid: int, last_zxid: int) -> None:
        """The log could not make these txns durable: they did not happen; their clients get an error."""
        self.tick_clock()
        self.core.sequencer.on_log_failed(int(Err.SYSTEMERROR))
        if not self.flushing:
            self.flush()

    # -- four-letter words -----------------------------------------------------------------------
    def four_letter(self, proto: ClientProtocol, word: str) -> None:
        self.tick_clock()
        try:
            text = self.words.run(word)
        except Exception as e:  # a diagnostic must never take the server down
            log.exception("four-letter word %s failed", word)
            text = f"error: {e}\n"
        proto.transport.write(text.encode())
        proto.transport.close()

    def mode(self) -> str:
        return "read-only" if self.core.config.read_only else "standalone"

    def mode_extra_lines(self) -> list[str]:
        return []

    def mode_mntr_rows(self) -> list[tuple[str, object]]:
        return []

    def fsync_count(self) -> int:
        return self.txnlog.fsync_count


async def serve_forever(cfg: ServerConfig) -> None:
    srv = CoordServer(cfg)
    await srv.start()
    try:
        await srv.stopped.wait()
    finally:
        await srv.stop()
