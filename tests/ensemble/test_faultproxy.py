"""The fault proxy itself: forwarding, one-way and symmetric partitions (hold / drop), delay, reset."""
from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest

from tests.support.faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            try:
                b = self.request.recv(65536)
            except OSError:
                return
            if not b:
                return
            self.request.sendall(b)


@pytest.fixture
def echo():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def proxy():
    p = FaultProxy()
    yield p
    p.close()


def _recv(s, n, timeout=3.0):
    s.settimeout(timeout)
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            break
        out += b
    return out


def test_forwarding_and_one_way_partition_hold(echo, proxy):
    port = proxy.route("a", "b", echo)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"ping")
    assert _recv(s, 4) == b"ping"
    proxy.partition_one_way("b", "a")         # answers stop, requests still arrive
    s.sendall(b"held")
    with pytest.raises(socket.timeout):
        _recv(s, 4, timeout=0.3)
    assert proxy.bytes_forwarded("a", "b") == 8
    proxy.heal()
    assert _recv(s, 4) == b"held"             # TCP-like: delivered late, in order
    s.close()


def test_symmetric_partition_blocks_new_connections_until_heal(echo, proxy):
    port = proxy.route("a", "b", echo)
    proxy.partition("a", "b")
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"x")
    with pytest.raises(socket.timeout):
        _recv(s, 1, timeout=0.3)
    proxy.heal("a", "b")
    assert _recv(s, 1) == b"x"


def test_drop_mode_discards_and_resets_on_heal(echo, proxy):
    port = proxy.route("a", "b", echo)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"1")
    assert _recv(s, 1) == b"1"
    proxy.partition_one_way("a", "b", mode="drop")
    s.sendall(b"lost")
    time.sleep(0.1)
    proxy.heal()
    assert _recv(s, 4) == b""                 # reset: the stream had a hole
    s.close()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"new")
    assert _recv(s, 3) == b"new"


def test_delay_and_reset(echo, proxy):
    port = proxy.route("a", "b", echo)
    proxy.delay("a", "b", 200)
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.monotonic()
    s.sendall(b"slow")
    assert _recv(s, 4) == b"slow"
    assert time.monotonic() - t0 >= 0.19
    proxy.heal()
    proxy.reset("b", "a")
    assert _recv(s, 1) == b""
    assert proxy.open_connections() == 0
