"""enforce.auth.enabled / enforce.auth.schemes / sessionRequireClientSASLAuth, differential against
real ZooKeeper 3.8 configured identically: an unauthenticated request (ping included) gets
SESSIONCLOSEDREQUIRESASLAUTH (-124) with no body and the connection closes; after authenticating
with an enforced scheme everything works; a failed SASL login answers -124; bad settings stop the
start of both."""
from __future__ import annotations

import pytest

from coord.jute.protocol import Err
from tests.compat.rawclient import ConnectionClosed
from tests.security.conftest import SASL_PROVIDER, USERS, start_sasl_pair, write_jaas
from tests.security.saslraw import login, session
from tests.security.test_sasl import both
from tests.security.test_sasl import _starts  # noqa: F401  (shared helper)

pytestmark = pytest.mark.realzk


def _request(c, op):
    """(err, body length, closed after) of one request."""
    try:
        r = c.exists("/") if op == "exists" else c.ping()
    except ConnectionClosed:
        return ("closed before a reply",)
    return r.err, len(r.body), c.is_closed_by_peer(2.0)


@pytest.fixture(scope="module")
def sasl_required(tmp_path_factory):
    d = tmp_path_factory.mktemp("enforce")
    p = start_sasl_pair(d, write_jaas(d / "jaas.conf"), {"sessionRequireClientSASLAuth": "true"})
    yield p
    p.stop()


@pytest.mark.parametrize("op", ["exists", "ping"])
def test_unauthenticated_request_refused(sasl_required, op):
    def run(host, port):
        c = session(host, port)
        out = _request(c, op)
        c.close_socket()
        return out
    zk, coord = both(sasl_required, run)
    assert zk == coord == (Err.SESSIONCLOSEDREQUIRESASLAUTH, 0, True)


def test_sasl_login_then_served_and_failed_login_says_124(sasl_required):
    def run(host, port):
        c = session(host, port)
        login(c, "jaasuser", USERS["jaasuser"])
        ok = _request(c, "exists")
        c.close_socket()
        c = session(host, port)
        failed = [s.shape() for s in login(c, "jaasuser", "wrong")]
        c.close_socket()
        return ok, failed
    zk, coord = both(sasl_required, run)
    assert zk == coord
    assert zk[0] == (0, 68, False)          # a Stat: served
    assert zk[1][-1][0] == Err.SESSIONCLOSEDREQUIRESASLAUTH


def test_enforce_digest_scheme(tmp_path):
    pair = start_sasl_pair(tmp_path, None, {"enforce.auth.enabled": "true", "enforce.auth.schemes": "digest"})
    try:
        def run(host, port):
            c = session(host, port)
            c.add_auth("digest", b"user:pw")
            ok = _request(c, "exists")
            c.close_socket()
            c = session(host, port)
            refused = _request(c, "exists")
            c.close_socket()
            return ok, refused
        zk, coord = both(pair, run)
        assert zk == coord
        assert zk[0][0] == 0 and zk[1][0] == Err.SESSIONCLOSEDREQUIRESASLAUTH
    finally:
        pair.stop()


@pytest.mark.parametrize("cfg", [
    {"enforce.auth.enabled": "true"},                                      # no schemes
    {"enforce.auth.enabled": "true", "enforce.auth.schemes": "x509"},      # no provider for x509
    {"sessionRequireClientSASLAuth": "true", "authProvider.1": None},      # no sasl provider
], ids=["no-schemes", "x509-without-provider", "sasl-without-provider"])
def test_bad_enforcement_settings_stop_both(tmp_path, cfg):
    from tests.support.coord_server import CoordProcess
    from tests.support.real_zk import RealZooKeeper
    extra = {"authProvider.1": SASL_PROVIDER}
    extra.update(cfg)
    extra = {k: v for k, v in extra.items() if v is not None}
    zk = RealZooKeeper(tmp_path / "zk", extra_cfg=extra)
    coord = CoordProcess(tmp_path / "coord", extra_cfg=extra)
    assert (_starts(zk), _starts(coord)) == (False, False)
    assert "enforce" in coord.log_text() or "not available" in coord.log_text()
