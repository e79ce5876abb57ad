"""cli_mt over TLS: ZooKeeper 3.8's C client shell built with OpenSSL (scripts/build-cli-mt-tls.sh;
Debian's cli_mt has no TLS) on the secureClientPort of real ZooKeeper 3.8 and of coord, configured
identically (the same key stores). The same commands on both; outputs compared as tests/compat's
cli_mt test compares them. A client certificate from a CA the servers do not trust is refused by both.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.compat.test_cli_mt import _RESULT, CliMt, normalise
from tests.security.certs import ssl_keys
from tests.security.conftest import start_sasl_pair
from tests.support.names import fresh

pytestmark = pytest.mark.realzk

ROOT = Path(__file__).resolve().parents[2]
CLI_MT_TLS = ROOT / ".cache" / "zk-c-client-tls" / "cli_mt"


@pytest.fixture(scope="module")
def cli_mt_tls():
    if not os.access(CLI_MT_TLS, os.X_OK):
        why = f"no TLS-capable cli_mt at {CLI_MT_TLS} (scripts/build-cli-mt-tls.sh builds it; setup.sh runs it)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return CLI_MT_TLS


@pytest.fixture(scope="module")
def tls_pair(pki, tmp_path_factory):
    p = start_sasl_pair(tmp_path_factory.mktemp("cli-tls"), None, ssl_keys(pki, "PKCS12"), secure=True)
    yield p
    p.stop()


def _cli(binary, pki, port: int, who: str = "client") -> CliMt:
    key, crt = pki.pem(who)
    host = f"127.0.0.1:{port}"
    # -s: the CA that signs the server's certificate, our certificate, our key, the key's password
    return CliMt(host, [str(binary), "-h", host, "-s", f"{pki.ca_pem()},{crt},{key},unused"])


def commands(r: str) -> list[str]:
    return [f"create {r}", f"create +e {r}/a", f"set {r}/a hello", f"get {r}/a", f"set {r}/a world",
            f"get {r}/a", f"ls {r}", f"exists {r}/nope", f"delete {r}/a", f"delete {r}", f"exists {r}"]


def test_cli_mt_over_tls(cli_mt_tls, pki, tls_pair):
    r = fresh("/tlsc")   # the module's servers: a rerun must not meet this run's nodes; the same on both
    got = {}
    for name, port in (("zk", tls_pair.zk.secure_port), ("coord", tls_pair.coord.secure_port)):
        got[name] = normalise(_cli(cli_mt_tls, pki, port).run(commands(r)))
    assert any("hello" in ln for ln in got["coord"]) and any("world" in ln for ln in got["coord"]), got["coord"]
    assert f"Error -101 for {r}/nope" in "\n".join(got["coord"])
    # as tests/compat's cli_mt test: the lines as a multiset, the completions in order
    assert sorted(got["zk"]) == sorted(got["coord"]), got
    assert [ln for ln in got["zk"] if _RESULT.match(ln)] == [ln for ln in got["coord"] if _RESULT.match(ln)]


def test_cli_mt_untrusted_certificate_refused(cli_mt_tls, pki, tls_pair):
    for name, port in (("zk", tls_pair.zk.secure_port), ("coord", tls_pair.coord.secure_port)):
        c = _cli(cli_mt_tls, pki, port, who="rogue")
        assert c.wait_for("error in ssl connect", limit=15), (name, c.lines[-5:])
        assert not any("Got a new session id" in ln for ln in c.lines), (name, c.lines)
        c.proc.kill()
        c.proc.wait(10)
