"""maxCnxns and failed TLS handshakes, differential against real ZooKeeper 3.8 with the same zoo.cfg:
the clientPort and the secureClientPort each take up to maxCnxns connections (ZooKeeper counts each
connection factory apart); one more is closed before any reply (before the TLS handshake on the
secure port) and counts in connection_rejected; a failed TLS handshake counts in auth_failed_count."""
from __future__ import annotations

import socket
import time

import pytest

from tests.compat.rawclient import RawClient
from tests.security.certs import ssl_keys
from tests.security.conftest import pki, start_sasl_pair  # noqa: F401  (the pki fixture)
from tests.security.test_tls import tls_client
from tests.support.real_zk import four_letter

pytestmark = pytest.mark.realzk


@pytest.fixture
def capped_pair(pki, tmp_path_factory):
    """Fresh servers per test (one test uses them): its counters (connection_rejected,
    auth_failed_count) are compared exactly, and a rerun on used servers would count the last try's."""
    cfg = dict(ssl_keys(pki, "JKS"), maxCnxns="2")
    p = start_sasl_pair(tmp_path_factory.mktemp("maxcnxns"), None, cfg, secure=True)
    yield p
    p.stop()


def _try(fn):
    """The client, or "refused" when the server closed it before a ConnectResponse."""
    try:
        return fn()
    except Exception:
        return "refused"


def _mntr(host, port) -> dict:
    rows = dict(ln.split("\t", 1) for ln in four_letter(host, port, "mntr").splitlines() if "\t" in ln)
    if not rows:
        raise ConnectionError("closed without an answer")
    return {k: rows.get(k) for k in ("zk_connection_rejected", "zk_auth_failed_count")}


def _until_admitted(fn, refusals: list, timeout=10.0):
    """The server notices a closed socket a little later: retry until admitted (refusals counted)."""
    deadline = time.monotonic() + timeout
    while True:
        c = _try(fn)
        if c != "refused" or time.monotonic() > deadline:
            return c
        refusals.append(1)
        time.sleep(0.1)


def test_max_cnxns_per_listener(pki, capped_pair):
    def run(name, host, port):
        sport = (capped_pair.zk if name == "zk" else capped_pair.coord).secure_port
        # a failed handshake (not TLS at all) first, while the secure port has room
        s = socket.create_connection((host, sport), timeout=10)
        s.sendall(b"\x16\x03\x01\x00\x05hello" + b"\0" * 64)
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()
        time.sleep(0.5)
        plain = [_try(lambda: RawClient(host, port).start()) for _ in range(3)]
        secure = [_try(lambda: tls_client(pki, host, sport, "client")) for _ in range(3)]
        word = _try(lambda: four_letter(host, port, "ruok") or "refused")
        out = {"plain": [c if c == "refused" else "ok" for c in plain],
               "secure": [c if c == "refused" else "ok" for c in secure], "4lw_when_full": word}
        plain[0].close_socket()
        retries = []   # how soon a closed slot is free again is timing: counted, not compared
        again = _until_admitted(lambda: RawClient(host, port).start(), retries)
        out["after_close"] = again if again == "refused" else "ok"
        for c in [again, *plain[1:], *secure]:
            if c != "refused":
                c.close_socket()
        mntr = _until_admitted(lambda: _mntr(host, port), retries)
        out["rejected_beyond_retries"] = int(mntr["zk_connection_rejected"]) - len(retries)
        out["auth_failed_count"] = mntr["zk_auth_failed_count"]
        return out
    zk = run("zk", "127.0.0.1", capped_pair.zk.client_port)
    coord = run("coord", "127.0.0.1", capped_pair.coord.client_port)
    assert zk == coord
    assert zk["plain"] == zk["secure"] == ["ok", "ok", "refused"] and zk["after_close"] == "ok"
    assert zk["rejected_beyond_retries"] == 3 and zk["auth_failed_count"] == "1"


def test_bad_max_cnxns_stops_the_start(tmp_path):
    from tests.support.coord_server import CoordProcess
    srv = CoordProcess(tmp_path / "coord", extra_cfg={"maxCnxns": "many"})
    with pytest.raises(Exception):
        srv.start(wait=10)
    srv.stop()
    assert "maxCnxns must be an integer" in srv.log_text()


def test_max_client_cnxns_per_ip(tmp_path):
    """maxClientCnxns (per client IP; ZooKeeper's NIO factory): the third connection from 127.0.0.1
    is closed before any reply and counts in connection_rejected, as in ZooKeeper."""
    from tests.limits.conftest import start_limits_pair
    pair = start_limits_pair(tmp_path, {"maxClientCnxns": "2"})
    try:
        out = {}
        for name, host, port in pair.targets:
            clients = [_try(lambda: RawClient(host, port).start()) for _ in range(3)]
            shape = ["refused" if c == "refused" else "ok" for c in clients]
            for c in clients:
                if c != "refused":
                    c.close_socket()
            retries = []
            mntr = _until_admitted(lambda: _mntr(host, port), retries)
            out[name] = shape, int(mntr["zk_connection_rejected"]) - len(retries)
    finally:
        pair.stop()
    assert out["zk"] == out["coord"] == (["ok", "ok", "refused"], 1)
