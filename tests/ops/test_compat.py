"""`coord compat` on real endpoints: coord beside real ZooKeeper 3.8 (the reference), ZooKeeper against
the built-in 3.8 answers, and a server that is not quite ZooKeeper (coord behind a proxy that turns
every multi into an opcode the server does not know): exactly the checks that use multi (kazoo's and
the Java client battery's) must fail, and the exit status must say so. The batteries of real
clients: kazoo, zkCli.sh, cli_mt (the C client) and ZooKeeper's Java client.
"""
from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading

import pytest

from tests.ops.prom import ROOT

pytestmark = [pytest.mark.realzk]


def _compat(*args):
    p = subprocess.run([sys.executable, "-m", "coord.cli", "compat", "--json", *args], capture_output=True,
                       text=True, cwd=ROOT, timeout=600)
    return p.returncode, json.loads(p.stdout)


class NoMultiProxy:
    """Forwards a client's connection to a server, rewriting the opcode of every multi (14) request
    to 1014, which no server implements."""

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.rewritten = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._up, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    def _up(self, c, u):
        buf, first = b"", True
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                buf += d
                out = b""
                while len(buf) >= 4:
                    n = struct.unpack(">i", buf[:4])[0]
                    if n < 0 or len(buf) < 4 + n:   # a four-letter word or a partial frame
                        if n < 0 or n > (1 << 20):
                            out, buf = out + buf, b""
                        break
                    frame = bytearray(buf[:4 + n])
                    buf = buf[4 + n:]
                    if not first and n >= 8 and struct.unpack(">i", frame[8:12])[0] == 14:
                        frame[8:12] = struct.pack(">i", 1014)
                        self.rewritten += 1
                    first = False
                    out += bytes(frame)
                u.sendall(out)
        except OSError:
            pass
        finally:
            _close(c, u)

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            _close(a, b)

    def close(self):
        self.sock.close()


def _close(*socks):
    """shutdown first: a plain close from this thread does not end the other thread's recv (no FIN)."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def test_coord_against_zookeeper_and_zookeeper_against_its_answers(tmp_path, real_zookeeper, coord_server):
    rc, out = _compat("--target", coord_server.connect_string, "--reference", real_zookeeper.connect_string,
                      "--seed", "1601")
    assert rc == 0 and out["ok"], json.dumps(out, indent=1)
    assert len(out["checks"]) >= 10
    rc, out = _compat("--target", real_zookeeper.connect_string, "--seed", "1602")
    assert rc == 0 and out["ok"], json.dumps(out, indent=1)


def test_a_server_without_multi_is_caught(coord_server):
    proxy = NoMultiProxy(coord_server.client_port)
    try:
        rc, out = _compat("--target", f"127.0.0.1:{proxy.port}", "--seed", "1603")
    finally:
        proxy.close()
    assert rc == 1 and not out["ok"]
    failed = sorted(k for k, v in out["checks"].items() if not v["pass"])
    # kazoo's multi check and the Java client battery's multi steps; cli_mt has no multi command
    assert failed == ["java_client", "multi"], json.dumps(out, indent=1)
    assert "Unimplemented" in json.dumps(out["checks"]["multi"]["target"]) and proxy.rewritten >= 1
    java = out["checks"]["java_client"]["target"]
    assert "multi=UNIMPLEMENTED" in java and "create=/j" in java, java
    assert out["checks"]["cli_mt"]["pass"]
