"""Controller election and epoch fencing, as KafkaController/KafkaZkClient do it (spec §3.3, §3.4).

Election: read /controller_epoch (E, version V; create "0" if missing), then one multi
[create(/controller, json, EPHEMERAL), setData(/controller_epoch, E+1, V)]. OK -> we lead with
epoch E+1 and fencing token epochZkVersion (the Stat version from the setData, normally V+1).
NODEEXISTS or BADVERSION -> re-read /controller: if it names us and the epoch is E+1 our own
earlier attempt won before a connection loss (the checker); otherwise someone else leads.

Fencing: every controller write is multi[check(/controller_epoch, epochZkVersion), op]. A BADVERSION
on the check means a newer controller exists: ControllerMovedError, and the controller resigns.
Otherwise the op's own code is the result (a BADVERSION there is a stale partition epoch).

/controller deletion re-runs the election on every candidate; NodeCreated/NodeDataChanged only
re-check who leads (and resign if that is no longer us). A /controller carrying
kraftControllerEpoch > 0 belongs to a KRaft controller (migration): ZK candidates keep hands off.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from kazoo.exceptions import NodeExistsError, NoNodeError

from . import codec, paths
from .errors import ControllerMovedError, KeeperError
from .events import EventThread
from .model import INITIAL_CONTROLLER_EPOCH, INITIAL_CONTROLLER_EPOCH_ZK_VERSION, ControllerRegistration
from .zkclient import (BAD_VERSION, NODE_EXISTS, OK, CheckOp, CreateOp, DeleteOp, MultiResult, SetDataOp,
                       WatchEvent, ZkClient, ZkOp)

log = logging.getLogger(__name__)


def get_controller(zk: ZkClient) -> ControllerRegistration | None:
    got = zk.get_data(paths.CONTROLLER)
    if got is None:
        return None
    return codec.decode_controller(got[0], got[1].version)


def get_controller_epoch(zk: ZkClient) -> tuple[int, int] | None:
    """(epoch, epochZkVersion) or None."""
    got = zk.get_data(paths.CONTROLLER_EPOCH)
    if got is None:
        return None
    return codec.decode_controller_epoch(got[0]), got[1].version


def maybe_create_controller_epoch(zk: ZkClient) -> tuple[int, int]:
    try:
        zk.create(paths.CONTROLLER_EPOCH, codec.encode_controller_epoch(INITIAL_CONTROLLER_EPOCH))
        return INITIAL_CONTROLLER_EPOCH, INITIAL_CONTROLLER_EPOCH_ZK_VERSION
    except NodeExistsError:
        got = get_controller_epoch(zk)
        if got is None:
            raise RuntimeError(f"{paths.CONTROLLER_EPOCH} existed before but went away while reading it")
        return got


def register_controller_and_increment_epoch(zk: ZkClient, broker_id: int, *, json_version: int = 2,
                                            timestamp_ms: int | None = None) -> tuple[int, int]:
    """(new epoch, epochZkVersion) or ControllerMovedError."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    cur = get_controller_epoch(zk) or maybe_create_controller_epoch(zk)
    cur_epoch, cur_version = cur
    new_epoch = cur_epoch + 1
    reg = ControllerRegistration(broker_id, ts, -1 if json_version >= 2 else None, json_version)
    result = zk.multi([CreateOp(paths.CONTROLLER, codec.encode_controller(reg), ephemeral=True),
                       SetDataOp(paths.CONTROLLER_EPOCH, codec.encode_controller_epoch(new_epoch), cur_version)])
    if result.code == OK:
        return new_epoch, result.results[1].version
    if result.code in (NODE_EXISTS, BAD_VERSION):
        return _check_controller_and_epoch(zk, broker_id, new_epoch)
    raise KeeperError(result.code, paths.CONTROLLER, "controller election")


def _check_controller_and_epoch(zk: ZkClient, broker_id: int, new_epoch: int) -> tuple[int, int]:
    current = get_controller(zk)
    if current is None:
        raise ControllerMovedError(f"{paths.CONTROLLER} went away while checking whether the election succeeded")
    if current.broker_id == broker_id:
        got = get_controller_epoch(zk)
        if got is None:
            raise RuntimeError(f"{paths.CONTROLLER_EPOCH} existed before but went away")
        if got[0] == new_epoch:
            return got
    raise ControllerMovedError("controller moved to another broker")


@dataclass(frozen=True)
class FencedResult:
    code: int
    result: object = None  # created path, Stat, or None


class FencedWriter:
    """Wraps writes in multi[check(/controller_epoch, epochZkVersion), op] and unwraps the results."""

    def __init__(self, zk: ZkClient, epoch_zk_version: int):
        self.zk = zk
        self.epoch_zk_version = epoch_zk_version

    def _wrap(self, op: ZkOp) -> list[ZkOp]:
        return [CheckOp(paths.CONTROLLER_EPOCH, self.epoch_zk_version), op]

    def _unwrap(self, op: ZkOp, r: MultiResult) -> FencedResult:
        if not r.results:
            raise KeeperError(r.code, op.path, "multi returned no per-op results")
        check = r.op_code(0)
        if check == BAD_VERSION:
            raise ControllerMovedError(
                f"controller epoch zkVersion check fails, expected zkVersion = {self.epoch_zk_version}")
        if check != OK:
            raise KeeperError(check, paths.CONTROLLER_EPOCH)
        code = r.op_code(1)
        return FencedResult(code, r.results[1] if code == OK else None)

    def write(self, op: ZkOp) -> FencedResult:
        return self._unwrap(op, self.zk.multi(self._wrap(op)))

    def write_many(self, ops: Sequence[ZkOp]) -> list[FencedResult]:
        """Pipelined, one multi per znode as Kafka does."""
        results = self.zk.multi_many([self._wrap(op) for op in ops])
        return [self._unwrap(op, r) for op, r in zip(ops, results)]

    def create(self, path: str, data: bytes | None = None) -> FencedResult:
        return self.write(CreateOp(path, data))

    def set_data(self, path: str, data: bytes | None, version: int = -1) -> FencedResult:
        return self.write(SetDataOp(path, data, version))

    def delete(self, path: str, version: int = -1) -> FencedResult:
        return self.write(DeleteOp(path, version))

    def delete_recursive(self, path: str) -> None:
        """Kafka's deleteRecursive with the epoch check on every delete; NoNode tolerated."""
        kids = self.zk.get_children(path)
        if kids is None:
            return
        for child in kids[0]:
            self.delete_recursive(f"{path}/{child}")
        r = self.delete(path)
        if r.code not in (OK, -101):
            raise KeeperError(r.code, path, "fenced recursive delete")


class ControllerElection:
    """A controller candidate: elects, watches /controller, resigns, re-elects (on an EventThread)."""

    def __init__(self, zk: ZkClient, broker_id: int, events: EventThread, *,
                 on_become: Callable[[int, int], None], on_resign: Callable[[], None],
                 json_version: int = 2):
        self.zk = zk
        self.broker_id = broker_id
        self.events = events
        self.on_become = on_become
        self.on_resign = on_resign
        self.json_version = json_version
        self.active_controller_id = -1
        self.epoch = -1
        self.epoch_zk_version = -1
        self.kraft_controller = False
        self._name = f"controller-election-{broker_id}"
        self._started = False

    @property
    def is_active(self) -> bool:
        return self.active_controller_id == self.broker_id and self.epoch_zk_version >= 0

    def start(self) -> None:
        self._started = True
        self.zk.register_state_handler(self._name, self)
        self.zk.register_data_handler(paths.CONTROLLER, self._on_controller_event)
        self.events.put("Startup", self._startup)

    def stop(self) -> None:
        self._started = False
        self.zk.unregister_state_handler(self._name)
        self.zk.unregister_data_handler(paths.CONTROLLER)
        self.events.put("Shutdown", self._resign)

    # events -------------------------------------------------------------------------------------

    def _on_controller_event(self, event: WatchEvent) -> None:
        if event.type == "deleted":
            self.events.put("Reelect", self._reelect)
        else:
            self.events.put("ControllerChange", self._controller_change)

    def before_initializing_session(self) -> None:
        self.events.put("Expire", self._expire)

    def after_initializing_session(self) -> None:
        # The registry re-registers the broker on the same dispatcher thread first.
        self.events.put("RegisterBrokerAndReelect", self._reelect)

    def after_reconnect(self) -> None:
        # kazoo dropped our /controller watch with the connection; re-arm and re-check.
        self.events.put("ControllerChange", self._controller_change)

    # actions (event thread) ---------------------------------------------------------------------

    def _startup(self) -> None:
        self.zk.exists(paths.CONTROLLER)  # arms the /controller watch even if absent
        self._elect()

    def _read_active(self) -> int:
        reg = get_controller(self.zk)  # getData re-arms the watch
        if reg is None:
            self.zk.exists(paths.CONTROLLER)
            self.kraft_controller = False
            return -1
        self.kraft_controller = reg.is_kraft
        return reg.broker_id

    def _elect(self) -> None:
        if not self._started:
            return
        self.active_controller_id = self._read_active()
        if self.active_controller_id != -1:
            if self.kraft_controller:
                log.info("a KRaft controller (%d) owns /controller; not competing", self.active_controller_id)
            return
        try:
            epoch, version = register_controller_and_increment_epoch(self.zk, self.broker_id,
                                                                      json_version=self.json_version)
        except ControllerMovedError:
            self.active_controller_id = self._read_active()
            log.info("broker %d lost the election to %d", self.broker_id, self.active_controller_id)
            return
        except Exception:
            log.exception("error while electing or becoming controller on broker %d", self.broker_id)
            self.trigger_controller_move()
            return
        self.active_controller_id = self.broker_id
        self.epoch, self.epoch_zk_version = epoch, version
        log.info("broker %d is the controller, epoch %d (epoch zkVersion %d)", self.broker_id, epoch, version)
        try:
            self.on_become(epoch, version)
        except ControllerMovedError:
            log.info("controller moved during failover of broker %d", self.broker_id)
            self._resign()
            self.active_controller_id = self._read_active()
        except Exception:
            log.exception("controller failover failed on broker %d", self.broker_id)
            self.trigger_controller_move()

    def _controller_change(self) -> None:
        was_active = self.is_active
        self.active_controller_id = self._read_active()
        if was_active and self.active_controller_id != self.broker_id:
            self._resign()
        elif self.active_controller_id == -1:
            self._reelect()

    def _reelect(self) -> None:
        if self.is_active:
            current = self._read_active()
            if current == self.broker_id:
                return  # still ours (a reconnect, not a loss)
        self._resign()
        self._elect()

    def _expire(self) -> None:
        self._resign()
        self.active_controller_id = -1

    def _resign(self) -> None:
        if self.epoch_zk_version >= 0:
            log.info("broker %d resigns as controller (epoch %d)", self.broker_id, self.epoch)
            self.epoch_zk_version = -1
            try:
                self.on_resign()
            except Exception:
                log.exception("resignation cleanup failed")

    def handle_controller_moved(self) -> None:
        """Called by the controller when a fenced write found a newer epoch. If /controller still
        names us (the epoch moved without a new /controller, e.g. a half-done KRaft claim), give it
        up so the candidates elect again at the current epoch instead of leaving nobody in charge."""
        self._resign()
        self.active_controller_id = self._read_active()
        if self.active_controller_id == self.broker_id and not self.kraft_controller:
            got = self.zk.get_data(paths.CONTROLLER)
            if got is not None and got[1].ephemeralOwner == self.zk.session_id:
                try:
                    self.zk.delete(paths.CONTROLLER, got[1].version)
                except NoNodeError:
                    pass
            self.active_controller_id = -1

    def trigger_controller_move(self) -> None:
        """On an illegal state: delete our /controller (fenced when we hold an epoch) so others elect."""
        version = self.epoch_zk_version
        self._resign()
        try:
            if version >= 0:
                FencedWriter(self.zk, version).delete(paths.CONTROLLER)
            else:
                reg = get_controller(self.zk)
                if reg is not None and reg.broker_id == self.broker_id:
                    self.zk.delete(paths.CONTROLLER)
        except (ControllerMovedError, NoNodeError):
            pass
        self.active_controller_id = -1
