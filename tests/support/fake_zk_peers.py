"""Three fake ZooKeeper voters that speak just enough of ZooKeeper's election protocol to be found
(server 1 LEADING, 2 and 3 FOLLOWING it) and whose "leader" then sends what a test scripts on its
quorum port: the hostile or unexpected peer input an observer must survive. Threads and sockets,
written from the wire format (coord.jute.quorum), so a real ZooKeeper observer can face it too."""
from __future__ import annotations

import socket
import struct
import threading

from coord.jute import quorum as Q
from tests.support.real_zk import free_port


class FakeVoters:
    def __init__(self, leader_says: bytes, epoch: int = 1):
        self.leader_says = leader_says       # bytes the fake leader writes after OBSERVERINFO arrives
        self.epoch = epoch
        self.ports = {sid: (free_port(), free_port()) for sid in (1, 2, 3)}   # sid -> (quorum, election)
        self.servers = {sid: f"127.0.0.1:{q}:{e}" for sid, (q, e) in self.ports.items()}
        self.registrations: list[bytes] = []   # what observers sent the fake leader first
        self.leader_links_closed = 0           # observers that closed the quorum link on us
        self.stop = threading.Event()
        self.listeners: list[socket.socket] = []
        self.threads: list[threading.Thread] = []

    def config_text(self, extra: dict[int, str]) -> bytes:
        lines = [f"server.{sid}={spec}:participant" for sid, spec in self.servers.items()]
        lines += [f"server.{sid}={spec}" for sid, spec in extra.items()]
        return ("\n".join(lines) + "\nversion=0").encode()

    def start(self, observers: dict[int, str]) -> "FakeVoters":
        config = self.config_text(observers)
        for sid, (q, e) in self.ports.items():
            self._listen(e, self._election, sid, config)
            if sid == 1:
                self._listen(q, self._quorum)
        return self

    def _listen(self, port: int, handler, *args) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(8)
        s.settimeout(0.2)
        self.listeners.append(s)

        def loop():
            while not self.stop.is_set():
                try:
                    c, _ = s.accept()
                except OSError:
                    continue
                threading.Thread(target=handler, args=(c, *args), daemon=True).start()
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        self.threads.append(t)

    @staticmethod
    def _read_exactly(c: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = c.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _election(self, c: socket.socket, sid: int, config: bytes) -> None:
        c.settimeout(10)
        try:
            head = self._read_exactly(c, 20)
            _, _, n = struct.unpack(">qqi", head)
            self._read_exactly(c, n)
            state = Q.LEADING if sid == 1 else Q.FOLLOWING
            while not self.stop.is_set():
                ln = struct.unpack(">i", self._read_exactly(c, 4))[0]
                self._read_exactly(c, ln)
                c.sendall(Q.Notification(state, 1, 0, 1, self.epoch, config=config).encode())
        except (OSError, EOFError):
            pass
        finally:
            c.close()

    def _quorum(self, c: socket.socket) -> None:
        c.settimeout(10)
        try:
            first = c.recv(4096)
            self.registrations.append(first)
            c.sendall(self.leader_says)
            while c.recv(4096):
                pass
            self.leader_links_closed += 1
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        self.stop.set()
        for s in self.listeners:
            s.close()
        for t in self.threads:
            t.join(2)
