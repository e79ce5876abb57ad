"""Prometheus metrics as ZooKeeper 3.8's PrometheusMetricsProvider exposes them, plus coord's own.

Enabled by `metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider`;
`/metrics` on `metricsProvider.httpHost` (0.0.0.0) : `metricsProvider.httpPort` (7000).

Where the numbers come from: the gauges are mntr's rows (FourLetterWords.mntr_rows: one source for
both), the counters are the shell's and the Zab peer's own counters, and the summaries are fed by
hooks on events that already happen (a txn-log batch made durable, a role change, a snapshot taken,
a GC pause). On the request path only what ZooKeeper itself counts per request: bytes per namespace
and read/update latency (coord.core.requeststats, a few additions per request, only while metrics
are on); everything else is read when scraped.

Why the page is rendered in the event loop: every counter lives in objects the loop mutates, so the
scrape reads them there (no lock, no torn read) and the bytes are written by the small asyncio HTTP
responder of coord.aio.httpd. A scrape costs O(sessions + watched paths), not O(znodes).

Exposition: prometheus-client's data model (Metric, Sample, floatToGoString) rendered in the text
format of client_java 0.9.0, which ZooKeeper 3.8 uses: counters keep their name (no `_total`), label
sets end with a comma (`{quantile="0.5",}`), help text is the name. Metrics ZooKeeper registers for
processing stages coord does not have are exported with zero values so that dashboards written for
ZooKeeper find them; ZK_FAMILIES lists them (docs/operations.md says why).
"""
from __future__ import annotations

import bisect
import gc
import logging
import time
from collections import deque


from coord.core.requeststats import RequestStats
from coord.aio import limits
from coord.aio import stalls
from coord.aio import jitsettle

log = logging.getLogger("coord.metrics")


def Metric(name: str, documentation: str, typ: str):  # noqa: N802 - stands for prometheus_client's class
    """prometheus_client's Metric, imported at the first use: every server imports this module, and
    importing prometheus_client cost ~0.15 s of CPU on PyPy plus a fork of `uname -p` (its platform
    collector), time a joining observer or a restarted member spent before it served."""
    from prometheus_client.core import Metric as PromMetric
    return PromMetric(name, documentation, typ)

PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
DEFAULT_PROVIDER = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"
NULL_PROVIDER = "org.apache.zookeeper.metrics.impl.NullMetricsProvider"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# mntr rows ZooKeeper registers as Prometheus gauges (ZooKeeperServer, QuorumZooKeeperServer,
# LeaderZooKeeperServer). Rows mntr has and Prometheus lacks (version, server_state) stay mntr-only.
GAUGE_ROWS = (
    "znode_count", "watch_count", "ephemerals_count", "approximate_data_size", "avg_latency",
    "min_latency", "max_latency", "outstanding_requests", "packets_received", "packets_sent",
    "num_alive_connections", "global_sessions", "local_sessions", "open_file_descriptor_count",
    "max_file_descriptor_count", "uptime", "quorum_size",
    # leader only: absent elsewhere (dashboard 10465 finds the leader by leader_uptime)
    "learners", "synced_followers", "synced_non_voting_followers", "synced_observers", "pending_syncs",
    "leader_uptime", "last_proposal_size", "max_proposal_size", "min_proposal_size",
)
LEADER_ONLY = frozenset(GAUGE_ROWS[GAUGE_ROWS.index("learners"):]) - {"synced_observers"}
BASIC = (0.5,)
ADVANCED = (0.5, 0.9, 0.99)

# Every family ZooKeeper 3.8's provider registers (read from a real 3.8 server's /metrics; leader-
# and quorum-only gauges come from GAUGE_ROWS). Those coord has no source for (a request-processor
# pipeline with queues between threads, a response cache, learner queues, TLS/ensemble-auth, quotas,
# per-namespace byte counts) are exported as zeros or, for labelled sets, with no samples, so that
# dashboards written for ZooKeeper find them; docs/operations.md lists them.
_ZK_FAMILIES = {
    "counter": """add_dead_watcher_stall_time bytes_received_count cnxn_closed_without_zk_server_running
        commit_count connection_drop_count connection_rejected connection_request_count
        connection_revalidate_count dead_watchers_cleared dead_watchers_queued diff_count
        digest_mismatches_count ensemble_auth_fail ensemble_auth_skip ensemble_auth_success
        insecure_admin_count large_requests_rejected learner_commit_received_count
        learner_proposal_received_count looking_count outstanding_changes_queued
        outstanding_changes_removed prep_processor_request_queued proposal_count
        quit_leading_due_to_disloyal_voter request_commit_queued
        request_throttle_wait_count requests_not_forwarded_to_commit_processor response_bytes
        response_packet_cache_hits response_packet_cache_misses response_packet_get_children_cache_hits
        response_packet_get_children_cache_misses revalidate_count sessionless_connections_expired
        skip_learner_request_to_next_processor_count snap_count stale_replies stale_requests
        stale_requests_dropped stale_sessions_expired sync_processor_request_queued throttled_ops
        tls_handshake_exceeded unrecoverable_error_count unsuccessful_handshake watch_bytes""",
    "gauge": """approximate_data_size auth_failed_count avg_latency connection_drop_probability
        ephemerals_count global_sessions last_client_response_size local_sessions
        max_client_response_size max_file_descriptor_count max_latency min_client_response_size
        min_latency non_mtls_local_conn_count non_mtls_remote_conn_count num_alive_connections
        open_file_descriptor_count outstanding_requests outstanding_tls_handshake packets_received
        packets_sent uptime watch_count znode_count""",
    "counter_set": "quota_exceeded_error_per_namespace",
    "gauge_set": """quota_bytes_limit_per_namespace quota_bytes_usage_per_namespace
        quota_count_limit_per_namespace quota_count_usage_per_namespace""",
    "summary": """commit_commit_proc_req_queued commit_process_time
        concurrent_request_processing_in_commit_processor connection_token_deficit dbinittime
        election_time follower_sync_time fsynctime inflight_diff_count inflight_snap_count
        leader_unavailable_time learner_request_processor_queue_size netty_queued_buffer_capacity
        node_changed_watch_count node_children_watch_count node_created_watch_count
        node_deleted_watch_count observer_sync_time pending_session_queue_size prep_process_time
        prep_processor_queue_size proposal_process_time read_commit_proc_issued
        read_commit_proc_req_queued reads_after_write_in_session_queue reads_issued_from_session_queue
        requests_in_session_queue session_queues_drained snapshottime socket_closing_time
        startup_snap_load_time startup_txns_load_time startup_txns_loaded sync_process_time
        sync_processor_batch_size sync_processor_queue_size
        time_waiting_empty_pool_in_commit_processor_read_ms unavailable_time
        write_batch_time_in_commit_processor write_commit_proc_issued write_commit_proc_req_queued""",
    "summary_advanced": """close_session_prep_time commit_propagation_latency
        dead_watchers_cleaner_latency local_write_committed_time_ms om_commit_process_time_ms
        om_proposal_process_time_ms prep_processor_queue_time_ms propagation_latency
        proposal_ack_creation_latency proposal_latency quorum_ack_latency read_commitproc_time_ms
        read_final_proc_time_ms readlatency request_throttle_queue_time_ms
        server_write_committed_time_ms sync_processor_queue_and_flush_time_ms
        sync_processor_queue_flush_time_ms sync_processor_queue_time_ms updatelatency
        write_commitproc_time_ms write_final_proc_time_ms""",
    "summary_set": "ack_latency learner_handler_qp_size learner_handler_qp_time_ms read_per_namespace write_per_namespace",
}
ZK_FAMILIES = {name: kind for kind, names in _ZK_FAMILIES.items() for name in names.split()}


def stable_copy(items, tries: int = 8) -> tuple:
    """A tuple of `items` taken while garbage-collector hooks may append to them: PyPy's gc.hooks and
    CPython's gc.callbacks run in this thread in the middle of a scrape and observe pauses, which
    made iterating the live deque raise "mutated during iteration" (a 500 on /metrics under load).
    The copy is one C/RPython-level step; a hook firing inside it only costs a retry."""
    for _ in range(tries - 1):
        try:
            return tuple(items)
        except RuntimeError:
            continue
    return tuple(items)


class Summary:
    """client_java's Summary as ZooKeeper builds it: count and sum since start, quantiles over the
    recent observations (a bounded window: the last `keep` values of the last `max_age_s`)."""
    __slots__ = ("count", "sum", "recent", "max_age_s", "quantiles")

    def __init__(self, quantiles=BASIC, keep: int = 2048, max_age_s: float = 60.0):
        self.count = 0
        self.sum = 0.0
        self.recent: deque = deque(maxlen=keep)
        self.max_age_s = max_age_s
        self.quantiles = quantiles

    def observe(self, v: float, now: float | None = None) -> None:
        self.count += 1
        self.sum += v
        self.recent.append((time.monotonic() if now is None else now, v))

    def quantile_values(self, now: float) -> list[tuple[float, float]]:
        vals = sorted(v for t, v in stable_copy(self.recent) if now - t <= self.max_age_s)
        if not vals:
            return [(q, float("nan")) for q in self.quantiles]
        return [(q, vals[min(len(vals) - 1, int(q * len(vals)))]) for q in self.quantiles]


class GcPauses:
    """Garbage-collector pauses of this process, by generation: CPython's gc.callbacks (start/stop),
    PyPy's gc.hooks (minor collections and major collection steps report their own duration)."""

    def __init__(self):
        self.by_gen: dict[str, Summary] = {}
        self._t0 = 0.0
        self.installed = False

    def _summary(self, gen: str) -> Summary:
        s = self.by_gen.get(gen)
        if s is None:
            s = self.by_gen[gen] = Summary(BASIC)
        return s

    def install(self) -> None:
        if self.installed:
            return
        mon = stalls.active()
        if mon is not None and mon._gc_installed:   # the stall monitor owns gc.hooks: listen to it
            mon.gc_listeners.append(self._on_gc)
            self.installed = True
            return
        hooks = getattr(gc, "hooks", None)
        if hooks is not None:            # PyPy
            pauses = self

            class _Hooks:
                on_gc_collect = None

                def on_gc_minor(self, stats):
                    pauses._summary("minor").observe(stats.duration * 1000)

                def on_gc_collect_step(self, stats):
                    pauses._summary("major").observe(stats.duration * 1000)
            hooks.set(_Hooks())
        elif hasattr(gc, "callbacks"):
            gc.callbacks.append(self._callback)
        else:
            return
        self.installed = True

    def uninstall(self) -> None:
        if not self.installed:
            return
        mon = stalls.active()
        if mon is not None and self._on_gc in mon.gc_listeners:
            mon.gc_listeners.remove(self._on_gc)
            self.installed = False
            return
        hooks = getattr(gc, "hooks", None)
        if hooks is not None:
            hooks.reset()
        elif self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        self.installed = False

    def _on_gc(self, kind: str, ms: float) -> None:
        self._summary(kind).observe(ms)

    def _callback(self, phase, info) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self._t0:
            self._summary(str(info.get("generation", "?"))).observe((time.perf_counter() - self._t0) * 1000)
            self._t0 = 0.0


class QuorumLinks:
    """A leader's view of its learner links, for ZooKeeper's `ack_latency{key=sid}` (a proposal's
    age when that learner's ACK for it arrives), `quorum_ack_latency` (its age when a quorum has it:
    the COMMIT), and `learner_handler_qp_size{key=sid}` (messages queued for that learner in one
    batch; ZooKeeper samples its per-learner queue as each packet leaves). Fed by the ensemble node
    from the effects and messages it already handles; a proposal's age counts from when the leader
    logged it. `learner_handler_qp_time_ms` stays without samples: coord writes a batch's messages
    to the socket in the loop turn that made them, there is no queue to wait in."""

    KEEP = 4096

    def __init__(self):
        self.zxids: list[int] = []       # last zxid of each logged batch, ascending
        self.times: list[float] = []
        self.last_commit = 0
        self.ack = {}                    # sid -> Summary
        self.quorum = Summary(ADVANCED)
        self.queued = {}                 # sid -> Summary

    def proposed(self, zxid: int, now: float) -> None:
        if len(self.zxids) >= 2 * self.KEEP:
            del self.zxids[:self.KEEP], self.times[:self.KEEP]
        self.zxids.append(zxid)
        self.times.append(now)

    def _age(self, zxid: int, now: float) -> float | None:
        i = bisect.bisect_left(self.zxids, zxid)
        if i == len(self.zxids):
            return None
        return (now - self.times[i]) * 1000

    def acked(self, sid: int, zxid: int, now: float) -> None:
        age = self._age(zxid, now)
        if age is not None:
            s = self.ack.get(sid)
            if s is None:
                s = self.ack[sid] = Summary(BASIC)
            s.observe(age, now)

    def committed(self, zxid: int, now: float) -> None:
        if zxid <= self.last_commit:
            return                       # the same COMMIT, sent to the next learner
        self.last_commit = zxid
        age = self._age(zxid, now)
        if age is not None:
            self.quorum.observe(age, now)

    def batch_sent(self, per_sid: dict, now: float) -> None:
        for sid, n in per_sid.items():
            s = self.queued.get(sid)
            if s is None:
                s = self.queued[sid] = Summary(BASIC)
            s.observe(n, now)

    def reset(self) -> None:
        """No longer leading: its proposals' times mean nothing to the next leader."""
        self.zxids.clear()
        self.times.clear()
        self.last_commit = 0


class ServerMetrics:
    """The event-fed part of one server's metrics (summaries and counters the core does not keep).
    The shell calls the on_* hooks; collect() reads everything at scrape (or mntr) time."""

    def __init__(self, server, export_runtime: bool = True):
        self.server = server
        self.export_runtime = export_runtime
        self.fsynctime = Summary(BASIC)
        self.batch_size = Summary(BASIC)          # sync_processor_batch_size: txns per log write
        self.write_ms = Summary(BASIC)            # coord: every log batch write, fsynced or not
        self.snapshottime = Summary(BASIC)
        self.election_time = Summary(BASIC)
        self.follower_sync_time = Summary(BASIC)
        self.dbinittime = Summary(BASIC)
        self.startup_snap_load_time = Summary(BASIC)
        self.startup_txns_loaded = Summary(BASIC)
        self.startup_txns_load_time = Summary(BASIC)
        self.gc = GcPauses()
        self.requests = RequestStats()            # fed by the core (coord.core.requeststats)
        self.links = QuorumLinks()                # fed by the ensemble node while it leads
        self.looking_since: float | None = time.monotonic()   # a member starts looking
        self.sync_since: float | None = None
        self.snapshots_seen = -1
        self._unmeasured_pages: dict[tuple, bytes] = {}   # render_page's cache
        self.enabled = True                       # False only while coord.aio.metrics_switch has it off

    # -- hooks (event loop) --------------------------------------------------------------------------
    def on_log_batch(self, ms: float, first_zxid: int, last_zxid: int, synced: bool) -> None:  # TxnLog.on_batch
        """A txn-log batch is on disk: its write time and size (zxids of a batch are consecutive)."""
        now = time.monotonic()
        self.write_ms.observe(ms, now)
        self.batch_size.observe((last_zxid & 0xFFFFFFFF) - (first_zxid & 0xFFFFFFFF) + 1
                                if last_zxid >> 32 == first_zxid >> 32 else 1, now)
        if synced:
            self.fsynctime.observe(ms, now)

    def on_loaded(self, rec) -> None:
        """Recovery done (coord.aio.datadir.Recovered): ZooKeeper's startup summaries, in ms. The
        core exists now: it starts counting per-namespace bytes and read/update latencies. An
        ensemble member has just put its configuration in /zookeeper/config, which ZooKeeper does with
        a setData (ZKDatabase.initConfigInZKDatabase), so it counts as a write there as well."""
        core = self.server.core
        core.collect_request_stats(self.requests)
        if core.config.quorum and core.config.config_data:
            self.requests.write(core.tree.nodes["/zookeeper/config"], "/zookeeper/config", core.config.config_data)
        self.dbinittime.observe((rec.snapshot_s + rec.replay_s) * 1000)
        self.startup_snap_load_time.observe(rec.snapshot_s * 1000)
        self.startup_txns_loaded.observe(rec.replayed)
        self.startup_txns_load_time.observe(rec.replay_s * 1000)

    def attach(self) -> None:
        """Hook the txn log (before it writes anything of this run)."""
        self.server.txnlog.on_batch = self.on_log_batch

    def on_role(self, old: str, new: str) -> None:
        now = time.monotonic()
        if old == "leading":
            self.links.reset()
        if new == "looking":
            if old != "looking" or self.looking_since is None:
                self.looking_since = now
        elif old == "looking" and self.looking_since is not None:
            self.election_time.observe((now - self.looking_since) * 1000)
            self.looking_since = None
        self.sync_since = now if new in ("following", "observing") else None

    def poll(self) -> None:
        """Events seen by reading state: a follower done syncing, a snapshot finished."""
        srv = self.server
        if self.sync_since is not None and srv.core is not None and srv.core.serving:
            self.follower_sync_time.observe((time.monotonic() - self.sync_since) * 1000)
            self.sync_since = None
        snaps = getattr(srv.storage, "snapshots", None)
        if snaps is not None:
            seen = (snaps.last_zxid, snaps.last_duration_s)
            if self.snapshots_seen == -1:
                self.snapshots_seen = seen
            elif seen != self.snapshots_seen and snaps.last_zxid >= 0:
                self.snapshots_seen = seen
                self.snapshottime.observe(snaps.last_duration_s * 1000)

    # -- reading -------------------------------------------------------------------------------------
    def families(self) -> list[Metric]:
        """Every metric family, read now (in the event loop)."""
        measured, unmeasured, coord = self.family_parts()
        return measured + self._unmeasured(unmeasured) + coord

    def family_parts(self) -> tuple[list[Metric], tuple[str, ...], list[Metric]]:
        """ZooKeeper's families coord measures, the names of those it does not (ZK_FAMILIES: always
        zero, so a scrape renders them once per set of names, see render_page), coord's own."""
        measured = self._measured()
        present = {m.name for m in measured}
        return measured, tuple(n for n in ZK_FAMILIES if n not in present), self._coord_families(time.monotonic())

    def render_page(self, extra: list[Metric] = ()) -> bytes:
        """render(self.families() + extra), with the constant block of unmeasured families rendered
        once per distinct set (a leader's set differs from a follower's) instead of on every scrape:
        they were ~50 Summary objects and a third of the page's samples, built and formatted anew."""
        measured, unmeasured, coord = self.family_parts()
        block = self._unmeasured_pages.get(unmeasured)
        if block is None:
            block = self._unmeasured_pages[unmeasured] = render(self._unmeasured(unmeasured))
        return render(measured) + block + render(coord + list(extra))

    @staticmethod
    def _unmeasured(names) -> list[Metric]:
        out = []
        for name in names:   # not measured by coord: see ZK_FAMILIES
            kind = ZK_FAMILIES[name]
            if kind in ("counter", "gauge"):
                out.append(_counter(name, 0.0) if kind == "counter" else _gauge(name, 0.0))
            elif kind in ("summary_set", "gauge_set", "counter_set"):
                out.append(Metric(name, name, kind[:-4]))   # a labelled set with no key yet
            else:
                out.append(_summary(name, Summary(ADVANCED if kind == "summary_advanced" else BASIC), 0.0))
        return out

    def _measured(self) -> list[Metric]:
        self.poll()
        srv = self.server
        now = time.monotonic()
        out: list[Metric] = []
        rows = dict(srv.words.mntr_rows(extra=False))
        leader = "zk_leader_uptime" in rows
        for name in GAUGE_ROWS:
            v = rows.get("zk_" + name)
            if v is not None and (leader or name not in LEADER_ONLY):
                out.append(_gauge(name, float(v)))
        out.append(_gauge("auth_failed_count", float(srv.auth_failed)))
        ct = srv.core.conn_throttle if srv.core is not None else None
        out.append(_gauge("connection_drop_probability", ct.drop if ct is not None else 0.0))
        if "zk_quorum_size" in rows and "zk_synced_observers" not in rows:
            out.append(_gauge("synced_observers", 0.0))   # FollowerZooKeeperServer registers it too
        for name, v in self._counters().items():
            out.append(_counter(name, float(v)))
        for name, s in (("fsynctime", self.fsynctime), ("sync_processor_batch_size", self.batch_size),
                        ("snapshottime", self.snapshottime), ("election_time", self.election_time),
                        ("follower_sync_time", self.follower_sync_time), ("dbinittime", self.dbinittime),
                        ("startup_snap_load_time", self.startup_snap_load_time),
                        ("startup_txns_loaded", self.startup_txns_loaded),
                        ("startup_txns_load_time", self.startup_txns_load_time)):
            out.append(_summary(name, s, now))
        out += self._request_families(now)
        out += self._quota_families()
        return out

    def _request_families(self, now: float) -> list[Metric]:
        """readlatency / updatelatency from the core's samples; bytes per namespace; on a leader, the
        learner links' summaries (QuorumLinks)."""
        rq = self.requests
        out = []
        rq.settle()
        for name, lat in (("readlatency", rq.read_latency), ("updatelatency", rq.update_latency)):
            m = Metric(name, name, "summary")
            vals = sorted(lat.samples)
            for q in ADVANCED:
                m.add_sample(name, {"quantile": str(q)},
                             float(vals[min(len(vals) - 1, int(q * len(vals)))]) if vals else float("nan"))
            m.add_sample(name + "_count", {}, float(lat.count))
            m.add_sample(name + "_sum", {}, float(lat.total))
            out.append(m)
        for name, table in (("read_per_namespace", rq.reads), ("write_per_namespace", rq.writes)):
            m = Metric(name, name, "summary")
            for ns, (count, total) in sorted(table.items()):
                m.add_sample(name, {"key": ns, "quantile": "0.5"}, float("nan"))
                m.add_sample(name + "_count", {"key": ns}, float(count))
                m.add_sample(name + "_sum", {"key": ns}, float(total))
            out.append(m)
        if getattr(self.server, "role", "") == "leading":
            ln = self.links
            for name, by_sid in (("ack_latency", ln.ack), ("learner_handler_qp_size", ln.queued)):
                m = Metric(name, name, "summary")
                for sid, s in sorted(by_sid.items()):
                    _add_summary(m, name, s, now, {"key": str(sid)})
                out.append(m)
            out.append(_summary("quorum_ack_latency", ln.quorum, now))
        return out

    def _quota_families(self) -> list[Metric]:
        """The per-namespace quota sets (coord.core.quota), labelled `key` as ZooKeeper's provider."""
        from coord.core.quota import namespace_gauges
        core = self.server.core
        if core is None:
            return []
        out = []
        for name, by_ns in namespace_gauges(core.tree).items():
            m = Metric(name, name, "gauge")
            for ns, v in sorted(by_ns.items()):
                m.add_sample(name, {"key": ns}, float(v))
            out.append(m)
        m = Metric("quota_exceeded_error_per_namespace", "quota_exceeded_error_per_namespace", "counter")
        for ns, v in sorted((core.quota.exceeded if core.quota is not None else {}).items()):
            m.add_sample("quota_exceeded_error_per_namespace", {"key": ns}, float(v))
        out.append(m)
        return out

    def _counters(self) -> dict[str, float]:
        srv = self.server
        c = {"connection_request_count": srv.next_conn_id - 1,
             "connection_rejected": limits.rejected(srv),
             "large_requests_rejected": srv.large_rejected,
             "unsuccessful_handshake": srv.auth_failed}
        rt = srv.core.req_throttle if srv.core is not None else None
        if rt is not None:
            c.update(throttled_ops=rt.throttled_ops, stale_requests_dropped=rt.stale_dropped,
                     request_throttle_wait_count=rt.waits)
        peer = getattr(srv, "peer", None)
        if peer is not None:
            st = peer.stats
            leading = getattr(srv, "role", "") == "leading"
            c.update(looking_count=st.elections, proposal_count=st.proposals,
                     commit_count=st.commits if leading else 0, snap_count=st.snap_syncs,
                     diff_count=st.diff_syncs,
                     learner_commit_received_count=0 if leading else st.commits)
        else:
            c.update(looking_count=0, proposal_count=0, commit_count=0, snap_count=0, diff_count=0,
                     learner_commit_received_count=0)
        return c

    def _coord_families(self, now: float) -> list[Metric]:
        srv = self.server
        tl = srv.txnlog
        out = [_summary("coord_txnlog_write_ms", self.write_ms, now),
               _summary("coord_group_commit_txns", self.batch_size, now),
               _gauge("coord_fsync_max_ms", float(tl.max_fsync_ms)),
               _counter("coord_txnlog_write_errors", float(tl.write_errors))]
        snaps = getattr(srv.storage, "snapshots", None)
        if snaps is not None:
            out += [_gauge("coord_snapshot_last_stall_ms", float(getattr(snaps, "last_max_slice_ms", 0.0))),
                    _gauge("coord_snapshot_max_stall_ms", float(snaps.max_stall_ms)),
                    _gauge("coord_snapshot_last_bytes", float(snaps.last_bytes)),
                    _gauge("coord_snapshot_in_progress", 1.0 if snaps.in_progress else 0.0)]
        gcm = Metric("coord_gc_pause_ms", "coord_gc_pause_ms", "summary")
        for gen, s in sorted(stable_copy(self.gc.by_gen.items())):
            _add_summary(gcm, "coord_gc_pause_ms", s, now, {"generation": gen})
        out.append(gcm)
        mon = stalls.active()
        if mon is not None:   # coord.aio.stalls: loop turns over 2 ms (and slow fsyncs) by cause
            sm = Metric("coord_stall_ms", "coord_stall_ms", "summary")
            mx = Metric("coord_stall_max_ms", "coord_stall_max_ms", "gauge")
            big = Metric("coord_stalls_over_10ms", "coord_stalls_over_10ms", "counter")
            for cause, (n, total, worst, over) in sorted(mon.stalls_by_cause().items()):
                sm.add_sample("coord_stall_ms_count", {"cause": cause}, float(n))
                sm.add_sample("coord_stall_ms_sum", {"cause": cause}, total)
                mx.add_sample("coord_stall_max_ms", {"cause": cause}, worst)
                big.add_sample("coord_stalls_over_10ms", {"cause": cause}, float(over))
            out += [sm, mx, big, _counter("coord_stall_monitor_errors", float(mon.errors))]
        tr = getattr(srv, "transport", None)
        if tr is not None:
            up = Metric("coord_peer_link_up", "coord_peer_link_up", "gauge")
            for sid in sorted(s for s in getattr(srv, "voters", {}) | getattr(srv, "observers", {})
                              if s != srv.sid):
                up.add_sample("coord_peer_link_up", {"sid": str(sid)}, 1.0 if tr.connected(sid) else 0.0)
            out += [up, _counter("coord_peer_messages_sent", float(tr.messages_sent)),
                    _counter("coord_peer_messages_received", float(tr.messages_received)),
                    _counter("coord_peer_garbage_disconnects", float(tr.garbage_disconnects)),
                    _counter("coord_peer_links_made", float(tr.links_made))]
        if self.export_runtime:
            out.append(_gauge("coord_threads", float(_threads())))
            compiled = jitsettle.compiled_count()
            if compiled is not None:   # PyPy: the JIT's loops and bridges, and whether decay=200 is on
                out += [_counter("coord_jit_compiled", float(compiled)),
                        _gauge("coord_jit_settled", 1.0 if jitsettle.settled() else 0.0),
                        _counter("coord_jit_rearms", float(jitsettle.rearms()))]
            heap = pypy_heap()
            if heap:
                hm = Metric("coord_pypy_memory_bytes", "coord_pypy_memory_bytes", "gauge")
                for kind, v in heap.items():
                    hm.add_sample("coord_pypy_memory_bytes", {"kind": kind}, float(v))
                out.append(hm)
        return out

    def mntr_rows(self) -> list[tuple[str, object]]:
        """The same samples for mntr (as ZooKeeper's mntr prints the Prometheus provider's: the sample
        name with its labels), for the families mntr does not print already."""
        have = {k for k, _ in self.server.words.mntr_rows(extra=False)}
        rows = []
        for m in self.families():
            for s in m.samples:
                key = "zk_" + s.name + _labels(s.labels, trailing=False)
                if key not in have:
                    rows.append((key, _value(s.value)))
        return rows

    def render(self) -> bytes:
        return self.render_page()


def _gauge(name: str, v: float) -> Metric:
    m = Metric(name, name, "gauge")
    m.add_sample(name, {}, v)
    return m


def _counter(name: str, v: float) -> Metric:
    m = Metric(name, name, "counter")
    m.add_sample(name, {}, float(v))   # as client_java 0.9: no _total
    return m


def _add_summary(m: Metric, name: str, s: Summary, now: float, labels: dict | None = None) -> None:
    labels = labels or {}
    for q, v in s.quantile_values(now):
        m.add_sample(name, {**labels, "quantile": str(q)}, v)
    m.add_sample(name + "_count", labels, float(s.count))
    m.add_sample(name + "_sum", labels, float(s.sum))


def _summary(name: str, s: Summary, now: float) -> Metric:
    m = Metric(name, name, "summary")
    _add_summary(m, name, s, now)
    return m


def _labels(labels: dict, trailing: bool = True) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + body + ("," if trailing else "") + "}"


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v: float) -> str:
    global _float_to_go
    if _float_to_go is None:              # imported at the first use (see Metric)
        from prometheus_client.utils import floatToGoString
        _float_to_go = floatToGoString
    return _float_to_go(v)


_float_to_go = None


def render(families) -> bytes:
    """Text format 0.0.4 as client_java 0.9.0's TextFormat.write004 writes it."""
    out = []
    for m in families:
        name = m.name
        if m.type == "counter" and m.samples and all(s.name == name + "_total" for s in m.samples):
            name += "_total"     # prometheus-client's own collectors (process_*): theirs end in _total
        mtype = {"unknown": "untyped", "info": "gauge"}.get(m.type, m.type)
        out.append(f"# HELP {name} {m.documentation}\n# TYPE {name} {mtype}\n")
        for s in m.samples:
            out.append(f"{s.name}{_labels(s.labels)} {_value(s.value)}\n")
    return "".join(out).encode()


def pypy_heap() -> dict[str, int]:
    """Where PyPy's memory is (gc.get_stats: bytes), to tell GC-heap growth from C-heap growth in RSS;
    {} on CPython."""
    if not hasattr(gc, "hooks"):
        return {}
    try:
        s = gc.get_stats(memory_pressure=False)
        return {"gc_used": int(s._s.total_gc_memory), "gc_allocated": int(s._s.total_allocated_memory),
                "arenas": int(s._s.total_arena_memory), "rawmalloced": int(s._s.total_rawmalloced_memory),
                "nursery": int(s._s.nursery_size), "peak_allocated": int(s._s.peak_allocated_memory),
                "jit_backend": int(s._s.jit_backend_allocated)}
    except Exception:   # noqa: BLE001 - a diagnostic must never fail a scrape
        return {}


def _threads() -> int:
    import threading
    return threading.active_count()


def runtime_families() -> list[Metric]:
    """prometheus-client's process and platform collectors (process_*, python_*): exportJvmInfo's
    counterpart for a Python process."""
    from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR
    out = []
    for c in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        try:
            out += list(c.collect())
        except Exception:   # a collector this runtime cannot feed (PyPy lacks gc.get_stats)
            pass
    return out


class MetricsServer:
    """/metrics over coord.aio.httpd, in the event loop."""

    def __init__(self, metrics: ServerMetrics, host: str, port: int):
        self.metrics = metrics
        self.host = host
        self.port = port
        self.http = None

    def page(self) -> bytes:
        return self.metrics.render_page(runtime_families() if self.metrics.export_runtime else [])

    async def start(self) -> None:
        from coord.aio.httpd import HttpServer
        self.metrics.gc.install()

        def handle(method: str, path: str, query: dict, headers: dict, body: bytes):
            if path != "/metrics":
                return 404, "text/plain", b"Not Found\n", {}
            if not self.metrics.enabled:   # coord.aio.metrics_switch (bench only): no scrape work
                return 503, "text/plain", b"metrics switched off\n", {}
            return 200, CONTENT_TYPE, self.page(), {}
        self.http = HttpServer(handle, "metrics")
        self.port = await self.http.start(self.host, self.port)
        log.info("Prometheus metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        self.metrics.gc.uninstall()
        if self.http is not None:
            await self.http.stop()


def provider_enabled(cfg) -> bool:
    """True if zoo.cfg names the Prometheus provider (ZooKeeper exports nothing otherwise)."""
    return getattr(cfg, "metrics_provider", None) == PROMETHEUS_PROVIDER


def for_server(server) -> ServerMetrics | None:
    """The server's metrics if zoo.cfg asks for them (made before recovery, so that it is timed)."""
    if not provider_enabled(server.cfg):
        return None
    m = ServerMetrics(server, server.cfg.metrics_export_jvm)
    m.attach()
    return m


async def start_server(server) -> MetricsServer | None:
    m = getattr(server, "metrics", None)
    if m is None:
        return None
    ms = MetricsServer(m, server.cfg.metrics_host, server.cfg.metrics_port or 7000)
    try:
        await ms.start()
    except OSError as e:   # ZooKeeper's provider fails the start too (MetricsProviderLifeCycleException)
        raise SystemExit(f"coord: cannot serve metrics on {ms.host}:{ms.port}: {e}") from None
    return ms


__all__ = ["MetricsServer", "ServerMetrics", "Summary", "render", "provider_enabled", "for_server", "start_server",
           "check_provider",
           "PROMETHEUS_PROVIDER"]


def check_provider(class_name: str) -> str | None:
    """metricsProvider.className: the Prometheus provider, or ZooKeeper's built-in ones (no /metrics).
    Another class would be a Java plug-in coord cannot load: refuse it, as ZooKeeper refuses a class
    it cannot find."""
    if class_name == PROMETHEUS_PROVIDER:
        return class_name
    if class_name in (DEFAULT_PROVIDER, NULL_PROVIDER, ""):
        return None
    raise ValueError(f"metricsProvider.className: {class_name!r} is not supported (coord serves "
                     f"{PROMETHEUS_PROVIDER} or {DEFAULT_PROVIDER})")
