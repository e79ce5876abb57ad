"""One ZooKeeper session used the way Kafka's ZooKeeperClient/KafkaZkClient use theirs, over kazoo.

Kafka's discipline, kept here:
- Every request that fails with CONNECTIONLOSS is sent again once the session is reconnected
  (`retry_until_connected`, tenacity). Idempotent requests (reads, unconditional setData/delete)
  are safe to repeat. Non-idempotent ones (create, conditional setData, multi) are repeated too,
  but only by callers that carry Kafka's checker for the duplicate outcome (NodeExists after our
  own create, BadVersion after our own conditional write); they get the raw result codes for that.
- A read arms a watch iff a handler is registered for that path (data) or the caller asked for
  it and a child handler is registered (children), so a handler is re-armed by the next read.
- Session life cycle: `before_initializing_session` when the session is lost (expired/closed),
  `after_initializing_session` once a new session is up. kazoo, unlike the Java client, drops all
  watches on a disconnect instead of replaying them with SetWatches, so `after_reconnect` tells
  owners to re-read (and so re-arm) what they watch after every reconnect of the same session.

Callbacks from kazoo's threads only enqueue; handlers run on one dispatcher thread, in order.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, Union

from kazoo.client import KazooClient
from kazoo.exceptions import (ConnectionLoss, NodeExistsError, NoNodeError, OperationTimeoutError,
                              SessionExpiredError, ZookeeperError)
from kazoo.protocol.serialization import CheckVersion, Create, Delete, GetChildren, GetData, SetData, Transaction
from kazoo.protocol.states import EventType, KazooState, ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay

from .bulk import BulkChannel

log = logging.getLogger(__name__)

OK = 0
SYSTEM_ERROR = -1
RUNTIME_INCONSISTENCY = -2
CONNECTION_LOSS = -4
NO_NODE = -101
BAD_VERSION = -103
NODE_EXISTS = -110
NOT_EMPTY = -111
SESSION_EXPIRED = -112


class ZkTimeoutError(Exception):
    """Not connected within the connection timeout (Kafka's ZooKeeperClientTimeoutException)."""


def error_code(exc: BaseException) -> int:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, ConnectionLoss):
        return CONNECTION_LOSS
    if isinstance(exc, SessionExpiredError):
        return SESSION_EXPIRED
    return SYSTEM_ERROR


@dataclass(frozen=True)
class ConnectString:
    """`host1:2181,host2:2181/chroot` as Kafka tools take it; the chroot is applied by the client."""
    hosts: str
    chroot: str

    @classmethod
    def parse(cls, connect: str) -> "ConnectString":
        i = connect.find("/")
        if i < 0:
            return cls(connect, "")
        chroot = connect[i:].rstrip("/")
        return cls(connect[:i], chroot)

    def __str__(self) -> str:
        return self.hosts + self.chroot


# multi ops --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateOp:
    path: str
    data: bytes | None = None
    ephemeral: bool = False
    sequential: bool = False


@dataclass(frozen=True)
class SetDataOp:
    path: str
    data: bytes | None
    version: int = -1


@dataclass(frozen=True)
class DeleteOp:
    path: str
    version: int = -1


@dataclass(frozen=True)
class CheckOp:
    path: str
    version: int


ZkOp = Union[CreateOp, SetDataOp, DeleteOp, CheckOp]


@dataclass(frozen=True)
class ErrorResult:
    err: int


@dataclass(frozen=True)
class MultiResult:
    """Per-op results of a multi and the code the Java client derives (first non-zero ErrorResult)."""
    code: int
    results: tuple[Any, ...]

    def op_code(self, index: int) -> int:
        r = self.results[index] if index < len(self.results) else ErrorResult(self.code)
        return r.err if isinstance(r, ErrorResult) else OK


@dataclass(frozen=True)
class WatchEvent:
    type: str  # "created" | "deleted" | "changed" | "child"
    path: str


@dataclass(frozen=True)
class GetDataResponse:
    path: str
    code: int
    data: bytes | None = None
    stat: ZnodeStat | None = None


_EVENT_NAMES = {EventType.CREATED: "created", EventType.DELETED: "deleted",
                EventType.CHANGED: "changed", EventType.CHILD: "child"}


class ZkClient:
    """A Kafka-style ZooKeeper session (chroot creation, retries, watch handlers, pipelining)."""

    def __init__(self, connect: str, session_timeout_ms: int = 18000, connection_timeout_ms: int | None = None,
                 *, create_chroot: bool = True, max_in_flight: int = 1000, name: str = "broker-meta",
                 client_id: tuple[int, bytes] | None = None, bulk: bool = True):
        self.connect = ConnectString.parse(connect)
        self.session_timeout_ms = session_timeout_ms
        self.connection_timeout_ms = connection_timeout_ms or session_timeout_ms
        self.create_chroot = create_chroot
        self.max_in_flight = max_in_flight
        self.name = name
        self._client_id = client_id
        self.use_bulk = bulk
        self._bulk: BulkChannel | None = None
        self._bulk_lock = threading.Lock()
        self.kazoo: KazooClient | None = None
        self._connected = threading.Event()
        self._closed = False
        self._session_id: int | None = None
        self._lost = False
        self._suspended = False
        self._data_handlers: dict[str, Callable[[WatchEvent], None]] = {}
        self._child_handlers: dict[str, Callable[[WatchEvent], None]] = {}
        self._state_handlers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._events: "queue.Queue[Callable[[], None] | None]" = queue.Queue()
        self._dispatcher = threading.Thread(target=self._dispatch, name=f"{name}-zk-dispatch", daemon=True)

    # life cycle ---------------------------------------------------------------------------------

    def start(self) -> "ZkClient":
        if self.connect.chroot and self.create_chroot:
            self._create_chroot()
        self.kazoo = KazooClient(
            hosts=str(self.connect), timeout=self.session_timeout_ms / 1000.0, client_id=self._client_id,
            connection_retry=dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=1.0),
            logger=logging.getLogger(f"kazoo.{self.name}"))
        self.kazoo.add_listener(self._on_state)
        self._dispatcher.start()
        self.kazoo.start(timeout=self.connection_timeout_ms / 1000.0)
        self._session_id = self.kazoo.client_id[0]
        self._connected.set()
        return self

    def _create_chroot(self) -> None:
        """Kafka's createChrootIfNecessary: a short session without the chroot, exists, then
        makeSurePersistentPathExists (createRecursive with null data, parents first, NodeExists
        tolerated; kazoo's ensure_path would write empty data instead of null)."""
        zk = KazooClient(hosts=self.connect.hosts, timeout=self.session_timeout_ms / 1000.0)
        zk.start(timeout=self.connection_timeout_ms / 1000.0)
        try:
            if zk.exists(self.connect.chroot) is None:
                parts = self.connect.chroot.strip("/").split("/")
                for i in range(1, len(parts) + 1):
                    try:
                        zk.create("/" + "/".join(parts[:i]), None)
                    except NodeExistsError:
                        pass
        finally:
            zk.stop()
            zk.close()

    def close(self) -> None:
        """closeSession: the server deletes our ephemerals at once."""
        if self._closed:
            return
        self._closed = True
        with self._bulk_lock:
            if self._bulk is not None:
                self._bulk.close()
        if self.kazoo is not None:
            try:
                self.kazoo.stop()
            finally:
                self.kazoo.close()
        self._events.put(None)

    def __enter__(self) -> "ZkClient":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def session_id(self) -> int:
        return self._session_id or 0

    @property
    def client_id(self) -> tuple[int, bytes] | None:
        return self.kazoo.client_id if self.kazoo else None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_until_connected(self, timeout_s: float | None = None) -> None:
        t = self.connection_timeout_ms / 1000.0 if timeout_s is None else timeout_s
        if not self._connected.wait(t):
            raise ZkTimeoutError(f"not connected to {self.connect} within {t:.1f}s")

    # state and watch dispatch -------------------------------------------------------------------

    def register_state_handler(self, name: str, handler: Any) -> None:
        """handler may define before_initializing_session(), after_initializing_session(),
        after_reconnect(); all run on the dispatcher thread."""
        with self._lock:
            self._state_handlers[name] = handler

    def unregister_state_handler(self, name: str) -> None:
        with self._lock:
            self._state_handlers.pop(name, None)

    def register_data_handler(self, path: str, handler: Callable[[WatchEvent], None]) -> None:
        with self._lock:
            self._data_handlers[path] = handler

    def unregister_data_handler(self, path: str) -> None:
        with self._lock:
            self._data_handlers.pop(path, None)

    def register_child_handler(self, path: str, handler: Callable[[WatchEvent], None]) -> None:
        with self._lock:
            self._child_handlers[path] = handler

    def unregister_child_handler(self, path: str) -> None:
        with self._lock:
            self._child_handlers.pop(path, None)

    def _on_state(self, state: str) -> None:
        # Runs on kazoo's connection thread: record and enqueue only.
        if state == KazooState.CONNECTED:
            cid = self.kazoo.client_id if self.kazoo else None
            new_id = cid[0] if cid else None
            if self._lost or (self._session_id is not None and new_id != self._session_id):
                self._lost = False
                self._suspended = False
                self._session_id = new_id
                self._connected.set()
                self._events.put(lambda: self._call_state("after_initializing_session"))
            elif self._suspended:
                self._suspended = False
                self._connected.set()
                self._events.put(lambda: self._call_state("after_reconnect"))
            else:
                self._connected.set()
        elif state == KazooState.SUSPENDED:
            self._suspended = True
            self._connected.clear()
        elif state == KazooState.LOST:
            self._connected.clear()
            if not self._closed:
                self._lost = True
                self._events.put(lambda: self._call_state("before_initializing_session"))

    def _call_state(self, method: str) -> None:
        with self._lock:
            handlers = list(self._state_handlers.values())
        for h in handlers:
            fn = getattr(h, method, None)
            if fn is not None:
                try:
                    fn()
                except Exception:  # a broken handler must not stop the others
                    log.exception("%s.%s failed", type(h).__name__, method)

    def _on_watch(self, event) -> None:
        kind = _EVENT_NAMES.get(event.type)
        if kind is None or event.path is None:
            return  # connection-level event: owners re-read after reconnect
        with self._lock:
            handler = (self._child_handlers if kind == "child" else self._data_handlers).get(event.path)
        if handler is not None:
            self._events.put(lambda: handler(WatchEvent(kind, event.path)))

    def _dispatch(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            try:
                item()
            except Exception:
                log.exception("watch/state handler failed")

    def _data_watch(self, path: str):
        with self._lock:
            return self._on_watch if path in self._data_handlers else None

    def _child_watch(self, path: str, register: bool):
        with self._lock:
            return self._on_watch if register and path in self._child_handlers else None

    # retries ------------------------------------------------------------------------------------

    def retry_until_connected(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Kafka's retryRequestUntilConnected: re-send after CONNECTIONLOSS once reconnected."""
        def wait_connected(_: RetryCallState) -> None:
            self.wait_until_connected()

        retrying = Retrying(retry=retry_if_exception_type((ConnectionLoss, OperationTimeoutError)),
                            stop=stop_after_delay(self.connection_timeout_ms / 1000.0),
                            before_sleep=wait_connected, wait=lambda _: 0.0, reraise=True)
        return retrying(fn, *args, **kwargs)

    def _k(self) -> KazooClient:
        if self.kazoo is None or self._closed:
            raise ConnectionLoss("client closed")
        return self.kazoo

    # single requests ----------------------------------------------------------------------------

    def get_data(self, path: str) -> tuple[bytes | None, ZnodeStat] | None:
        try:
            return self.retry_until_connected(lambda: self._k().get(path, watch=self._data_watch(path)))
        except NoNodeError:
            return None

    def exists(self, path: str) -> ZnodeStat | None:
        return self.retry_until_connected(lambda: self._k().exists(path, watch=self._data_watch(path)))

    def get_children(self, path: str, register_watch: bool = False) -> tuple[list[str], ZnodeStat] | None:
        try:
            return self.retry_until_connected(lambda: self._k().get_children(
                path, watch=self._child_watch(path, register_watch), include_data=True))
        except NoNodeError:
            return None

    def create(self, path: str, data: bytes | None = None, *, ephemeral: bool = False,
               sequential: bool = False) -> str:
        """One attempt per connection; callers own the NodeExists-after-retry check."""
        return self.retry_until_connected(lambda: self._k().create(path, data, ephemeral=ephemeral, sequence=sequential))

    def set_data(self, path: str, data: bytes | None, version: int = -1) -> ZnodeStat:
        return self.retry_until_connected(lambda: self._k().set(path, data, version))

    def delete(self, path: str, version: int = -1) -> None:
        self.retry_until_connected(lambda: self._k().delete(path, version))

    def create_recursive(self, path: str, data: bytes | None = None, throw_if_exists: bool = False) -> None:
        """Kafka's createRecursive: try the node, on NoNode create parents (null data) and retry."""
        try:
            self.create(path, data)
            return
        except NodeExistsError:
            if throw_if_exists:
                raise
            return
        except NoNodeError:
            pass
        parent = path.rsplit("/", 1)[0]
        if parent:
            self.create_recursive(parent, None)
        try:
            self.create(path, data)
        except NodeExistsError:
            if throw_if_exists:
                raise

    def make_sure_persistent_path_exists(self, path: str) -> None:
        self.create_recursive(path, None, throw_if_exists=False)

    def delete_recursive(self, path: str, version: int = -1) -> bool:
        """Leaves first; NoNode tolerated. False if the node did not exist."""
        kids = self.get_children(path)
        if kids is None:
            return False
        for child in kids[0]:
            self.delete_recursive(f"{path}/{child}")
        try:
            self.delete(path, version)
        except NoNodeError:
            pass
        return True

    # multi --------------------------------------------------------------------------------------

    def _full(self, path: str) -> str:
        root = self.connect.chroot
        if not root:
            return path
        return root if path == "/" else root + path

    def _transaction(self, ops: Sequence[ZkOp]):
        txn = self._k().transaction()
        for record in self._records(ops):
            txn._add(record)  # kazoo's builder refuses null data; Kafka creates many nodes with null data
        return txn

    @staticmethod
    def _multi_result(raw: Iterable[Any]) -> MultiResult:
        results = []
        code = OK
        for r in raw:
            if isinstance(r, ZookeeperError):
                err = error_code(r)
                results.append(ErrorResult(err))
                if code == OK and err != OK:
                    code = err
            else:
                results.append(r)
        return MultiResult(code, tuple(results))

    def multi(self, ops: Sequence[ZkOp]) -> MultiResult:
        """One multi; the caller interprets codes (Kafka never retries a multi without a checker)."""
        return self.retry_until_connected(lambda: self._multi_result(self._transaction(ops).commit()))

    # pipelined batches (Kafka's handleRequests) -------------------------------------------------

    def _peer(self) -> tuple[str, int] | None:
        try:
            return self.kazoo._connection._socket.getpeername()[:2]
        except Exception:  # kazoo internals moved or not connected: any server will do
            return None

    def _bulk_run(self, requests: list) -> list[tuple[int, Any]]:
        """Run watch-free requests on the pipelined side channel (see bulk.py)."""
        with self._bulk_lock:
            if self._closed:
                raise ConnectionLoss("client closed")
            if self._bulk is None:
                self._bulk = BulkChannel(self.connect.hosts, self.connect.chroot, self.session_timeout_ms,
                                         self.connection_timeout_ms / 1000.0, window=self.max_in_flight,
                                         preferred=self._peer, last_zxid=lambda: self.kazoo.last_zxid if self.kazoo else 0)
            return self._bulk.run(requests)

    def _bulk_ok(self, paths_: Sequence[str] = ()) -> bool:
        if not self.use_bulk:
            return False
        with self._lock:
            return not any(p in self._data_handlers for p in paths_)

    def _records(self, ops: Sequence[ZkOp]) -> list:
        out = []
        for op in ops:
            if isinstance(op, CreateOp):
                flags = (1 if op.ephemeral else 0) | (2 if op.sequential else 0)
                out.append(Create(self._full(op.path), op.data, OPEN_ACL_UNSAFE, flags))
            elif isinstance(op, SetDataOp):
                out.append(SetData(self._full(op.path), op.data, op.version))
            elif isinstance(op, DeleteOp):
                out.append(Delete(self._full(op.path), op.version))
            elif isinstance(op, CheckOp):
                out.append(CheckVersion(self._full(op.path), op.version))
            else:
                raise TypeError(op)
        return out

    def _pipelined(self, items: Sequence[Any], send: Callable[[Any], Any],
                   finish: Callable[[Any, Any], Any]) -> list[Any]:
        """Send up to max_in_flight requests back to back; re-send those that hit CONNECTIONLOSS."""
        results: list[Any] = [None] * len(items)
        remaining = list(range(len(items)))
        deadline = None
        while remaining:
            retry: list[int] = []
            for start in range(0, len(remaining), self.max_in_flight):
                window = remaining[start:start + self.max_in_flight]
                asyncs = []
                for i in window:
                    try:
                        asyncs.append((i, send(items[i])))
                    except (ConnectionLoss, OperationTimeoutError):
                        asyncs.append((i, None))
                for i, a in asyncs:
                    if a is None:
                        retry.append(i)
                        continue
                    try:
                        value = a.get()
                    except (ConnectionLoss, OperationTimeoutError):
                        retry.append(i)
                        continue
                    except Exception as e:  # per-request result codes go to finish
                        value = e
                    results[i] = finish(items[i], value)
            remaining = retry
            if remaining:
                if deadline is None:
                    deadline = time.monotonic() + self.connection_timeout_ms / 1000.0
                elif time.monotonic() > deadline:
                    raise ZkTimeoutError("requests kept failing with connection loss")
                self.wait_until_connected()
        return results

    def get_data_many(self, paths: Sequence[str]) -> list[GetDataResponse]:
        if paths and self._bulk_ok(paths):
            return [GetDataResponse(p, err, *(resp if err == OK else (None, None)))
                    for p, (err, resp) in zip(paths, self._bulk_run([GetData(self._full(p), None) for p in paths]))]

        def send(p):
            return self._k().get_async(p, watch=self._data_watch(p))

        def finish(p, v):
            if isinstance(v, BaseException):
                if isinstance(v, SessionExpiredError):
                    raise v
                return GetDataResponse(p, error_code(v))
            return GetDataResponse(p, OK, v[0], v[1])

        return self._pipelined(paths, send, finish)

    def get_children_many(self, paths: Sequence[str]) -> list[tuple[str, list[str] | None]]:
        if paths and self.use_bulk:
            return [(p, list(resp) if err == OK else None)
                    for p, (err, resp) in zip(paths, self._bulk_run([GetChildren(self._full(p), None) for p in paths]))]

        def send(p):
            return self._k().get_children_async(p)

        def finish(p, v):
            if isinstance(v, NoNodeError):
                return p, None
            if isinstance(v, BaseException):
                raise v
            return p, list(v)

        return self._pipelined(paths, send, finish)

    def multi_many(self, batches: Sequence[Sequence[ZkOp]]) -> list[MultiResult]:
        """Many multis pipelined; a CONNECTIONLOSS re-sends that multi (callers check BadVersion/NodeExists).
        Only session-independent writes belong here (fenced or conditional; never ephemerals)."""
        if batches and self.use_bulk and not any(isinstance(op, CreateOp) and op.ephemeral for b in batches for op in b):
            out = []
            for err, resp in self._bulk_run([Transaction(self._records(ops)) for ops in batches]):
                out.append(self._multi_result(resp) if err == OK else MultiResult(err, ()))
            return out

        def send(ops):
            return self._transaction(ops).commit_async()

        def finish(ops, v):
            if isinstance(v, BaseException):
                if isinstance(v, SessionExpiredError):
                    raise v
                return MultiResult(error_code(v), ())
            return self._multi_result(v)

        return self._pipelined(batches, send, finish)

    def create_many(self, items: Sequence[tuple[str, bytes | None]]) -> list[int]:
        """Pipelined persistent creates -> result codes (NodeExists is the caller's to judge)."""
        if items and self.use_bulk:
            return [err for err, _ in self._bulk_run([Create(self._full(p), d, OPEN_ACL_UNSAFE, 0) for p, d in items])]

        def send(item):
            return self._k().create_async(item[0], item[1])

        def finish(item, v):
            if isinstance(v, BaseException):
                if isinstance(v, SessionExpiredError):
                    raise v
                return error_code(v)
            return OK

        return self._pipelined(items, send, finish)
