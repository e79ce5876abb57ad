"""The contract between a pure Zab peer (coord.core.zab) and whatever drives it (the asyncio shell in
coord.aio, or the simulator in coord.sim).

A QuorumPeer is a deterministic state machine. Its driver feeds it inputs (method calls below) and,
after each input, drains its effects (`peer.drain_effects()`), performing them in order. Completions
of effects that touch the disk come back as inputs; the peer never assumes an effect happened until
its completion arrives. That is how "ack only after fsync" and "act on an epoch only after it is
durable" are enforced in one place, and how the simulator can crash a node between an effect and its
completion.

Peer messages are opaque bytes to the driver: the peer encodes and decodes its own (versioned,
checksummed) format; the driver only frames them on a connection per peer pair, bounded in size.

Inputs (QuorumPeer methods)
    start(now_ms, mono_ms, durable_state)   durable_state: DurableState read from disk at boot
    tick(now_ms, mono_ms)                    at least every 10 ms of real or virtual time
    peer_connected(sid) / peer_disconnected(sid)
    message(from_sid, data: bytes)           one whole peer message
    epochs_persisted(accepted_epoch, current_epoch)
    log_durable(zxid)                        every record up to zxid is fsynced
    log_truncated(zxid)                      the log now ends at zxid (TRUNC sync)
    snapshot_installed(zxid)                 a received snapshot is durable and loaded
    client frames go to peer.core (a coord.core.server.ServerCore) exactly as in standalone.

Effects (tuples; first field is the kind)
    ("send", to_sid, data)
    ("connect", to_sid)                      ask the driver to (re)open the link to a peer
    ("persist_epochs", accepted_epoch, current_epoch)   atomically: temp, fsync, rename, fsync dir
    ("append", records)                      [(TxnHeader, txn)] to the log; fsync then log_durable
    ("truncate", zxid)                       drop log records after zxid; then log_truncated
    ("install_snapshot", data: bytes, zxid)  write durably as the newest snapshot; then snapshot_installed
    ("role", name)                           "looking" | "leading" | "following" | "observing", for srvr/mntr
    ("log", level, text)
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DurableState:
    """What a peer reads from its own disk at boot."""
    accepted_epoch: int = 0
    current_epoch: int = 0
    last_logged_zxid: int = 0
    snapshot_zxid: int = 0
    extra: dict = field(default_factory=dict)


def zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


def epoch_of(z: int) -> int:
    return z >> 32


def counter_of(z: int) -> int:
    return z & 0xFFFFFFFF
