"""The contract between a pure Zab peer (coord.core.zab) and whatever drives it (the asyncio shell in
coord.aio, or the simulator in coord.sim).

A QuorumPeer is a deterministic state machine. Its driver feeds it inputs (method calls below) and,
after each input, drains its effects (`peer.drain_effects()`), performing them in order. Completions
of effects that touch the disk come back as inputs; the peer never assumes an effect happened until
its completion arrives. That is how "ack only after fsync" and "act on an epoch only after it is
durable" are enforced in one place, and how the simulator can crash a node between an effect and its
completion.

Peer messages are opaque bytes to the driver: the peer encodes and decodes its own (versioned,
checksummed, sequence-numbered) format; the driver only frames them on a connection per peer pair,
bounded in size, FIFO. A link that loses, duplicates or reorders messages is detected by the peer
(sequence numbers restart at every peer_connected) and answered with a `disconnect` effect.

Construction
    QuorumPeer(sid, voters, observers, core, config)
        voters/observers: mappings (or iterables) keyed by server id; values are opaque to the peer
        core: a coord.core.server.ServerCore whose tree is the *committed* state read from disk
              (newest snapshot); see DurableState.log for the records after it
        config: ZabConfig (below)

Inputs (QuorumPeer methods)
    start(now_ms, mono_ms, durable_state)   durable_state: DurableState read from disk at boot
    tick(now_ms, mono_ms)                    at least every 10 ms of real or virtual time; at once again
                                             (after serving other input) while `peer.streaming` is
                                             true: a leader sends a SNAP a slice per tick
    peer_connected(sid) / peer_disconnected(sid)
    message(from_sid, data: bytes)           one whole peer message
    epochs_persisted(accepted_epoch, current_epoch)
    log_durable(zxid)                        every record up to zxid is fsynced
    log_truncated(zxid)                      the log now ends at zxid (TRUNC sync)
    snapshot_installed(zxid)                 a received snapshot is durable and loaded
    client frames go to peer.core (a coord.core.server.ServerCore) exactly as in standalone;
    after them too, call peer.drain_effects() (proposals are batched there) and then core.drain().

Effects (tuples; first field is the kind)
    ("send", to_sid, data)
    ("connect", to_sid)                      ask the driver to (re)open the link to a peer
    ("disconnect", to_sid)                   close the link (the peer sent garbage or broke protocol);
                                             report peer_disconnected(sid) once it is closed
    ("persist_epochs", accepted_epoch, current_epoch)   atomically: temp, fsync, rename, fsync dir
    ("append", records)                      [(TxnHeader, txn)] to the log; fsync then log_durable
    ("truncate", zxid)                       drop log records after zxid; then log_truncated
    ("install_snapshot", data: bytes, zxid)  data is coord.core.snapformat bytes: write durably as the
                                             newest snapshot, then drop every log record after zxid
                                             (the log continues from the snapshot); then
                                             snapshot_installed(zxid)
                                             data None: write the core's own tree (a leader's
                                             restored tree, at zxid), however the driver snapshots
    ("restored", request_id, zxid, error)    the answer to QuorumPeer.restore (error None: restored)
    ("role", name)                           "looking" | "leading" | "following" | "observing" |
                                             "removed" (a reconfig took us out), for srvr/mntr
    ("config", voters, observers, version)   a configuration became active (dynamic reconfiguration):
                                             the servers to keep links to (values as given to the
                                             constructor, or coord.core.quorumserver.QuorumServer from a
                                             reconfig); links to servers it no longer names may go
    ("log", level, text)

Ordering the driver must keep: disk effects (append, truncate, install_snapshot, persist_epochs) are
performed in the order emitted, and their completions are reported in that order too (a log_durable
for records appended before a truncate arrives before that truncate's log_truncated).

Snapshots taken by the driver (every snapCount txns) must be of `peer.core.tree` as it is at that
moment: the peer applies only committed txns to it, so a snapshot never holds uncommitted state
(ZOOKEEPER-1549), and the tree object itself is replaced by a SNAP sync.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DurableState:
    """What a peer reads from its own disk at boot.

    `log` holds the intact log records *after* core.tree's zxid, in order, NOT applied to the tree:
    whether they are committed is unknown until a leader says so. A driver that replays the whole log
    into the tree instead (and passes log=[]) is still safe: the peer reports the tree's zxid as its
    committed floor, and a leader that would have to TRUNC below it sends a SNAP instead. Such a driver
    may pass the newest records it replayed as `committed` (in order, ending at the tree's zxid) and
    the zxid just before the first of them as `committed_base`: they seed the committed window of the
    history, so that after a restart this peer, as leader, syncs a learner by DIFF rather than SNAP
    (ZooKeeper's committedLog, rebuilt at load). Whatever the tree holds would be committed by this
    peer's own leadership anyway; as a learner it never truncates below it.
    """
    accepted_epoch: int = 0
    current_epoch: int = 0
    last_logged_zxid: int = 0
    snapshot_zxid: int = 0
    extra: dict = field(default_factory=dict)     # "pending_configs": [(zxid, config data)] of
                                                  # reconfigs a driver replayed into the tree
    log: list = field(default_factory=list)
    committed: list = field(default_factory=list)
    committed_base: int = 0


@dataclass
class ZabConfig:
    """Timing and bounds. tick_ms, init_limit and sync_limit mean what they mean in zoo.cfg."""
    tick_ms: int = 2000
    init_limit: int = 10                 # ticks a learner may take to connect and sync
    sync_limit: int = 5                  # ticks without hearing from the other side before giving up
    ping_interval_ms: int = 0            # 0: tick_ms / 2, as ZooKeeper's leader
    election_finalize_ms: int = 50       # wait for a better vote once a quorum agrees
    election_resend_ms: int = 100        # notification resend interval; doubles up to the max
    election_resend_max_ms: int = 2000
    reconnect_ms: int = 200              # re-issue `connect` for a wanted link this often
    settled_tick_ms: int = 100           # the driver's tick while nothing time-bound is under way
    history_txns: int = 10000            # committed txns kept in memory for DIFF sync
    history_bytes: int = 64 << 20
    max_batch_bytes: int = 1 << 20       # proposals / DIFF txns per message
    snap_chunk_bytes: int = 1 << 20
    snap_slice_nodes: int = 256          # znodes a leader encodes per tick while streaming a SNAP (~1 ms)
    max_message_bytes: int = 64 << 20
    max_snapshot_bytes: int = 8 << 30
    max_held_requests: int = 100000      # client writes held while the leader rolls its epoch
    zxid_counter_limit: int = 0xFFFFFFFE  # test-only lower values force an epoch roll sooner

    @property
    def ping_ms(self) -> int:
        return self.ping_interval_ms or max(1, self.tick_ms // 2)

    @property
    def idle_tick_ms(self) -> int:
        """The tick of a settled peer (QuorumPeer.settled): what remains on the tick then is pings
        (every ping_ms), limits of syncLimit ticks and session expiry, none finer than a quarter
        tick, so a few ticks a second do (ZooKeeper's own wake-ups are per tickTime) where 100 a
        second made an idle coord ensemble use ten times ZooKeeper's CPU."""
        return max(1, min(self.settled_tick_ms, self.tick_ms // 4))


def zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


def epoch_of(z: int) -> int:
    return z >> 32


def counter_of(z: int) -> int:
    return z & 0xFFFFFFFF
