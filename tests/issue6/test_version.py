"""Version identity: srvr, stat, envi and mntr carry a ZooKeeper-compatible version string with
coord's own version in it, in the shapes real ZooKeeper 3.8 uses; kazoo's server_version() (which
parses `envi`) accepts it."""
from __future__ import annotations

import re

import pytest
from kazoo.client import KazooClient

from coord import __version__
from tests.compat.conftest import start_pair
from tests.support.real_zk import four_letter

pytestmark = pytest.mark.realzk

# ZooKeeper's org.apache.zookeeper.Version.getFullVersion(): "<x.y.z>-<revision>, built on <date>"
FULL = re.compile(r"^(\d+)\.(\d+)\.(\d+)-(\S+), built on \d{4}-\d\d-\d\d \d\d:\d\d (GMT|UTC)$")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    p = start_pair(tmp_path_factory.mktemp("ver"))
    yield p
    p.stop()


def _version_lines(port: int) -> dict[str, str]:
    out = {}
    for word, prefix in (("srvr", "Zookeeper version: "), ("stat", "Zookeeper version: ")):
        line = four_letter("127.0.0.1", port, word).splitlines()[0]
        assert line.startswith(prefix), line
        out[word] = line[len(prefix):]
    envi = dict(ln.split("=", 1) for ln in four_letter("127.0.0.1", port, "envi").splitlines() if "=" in ln)
    out["envi"] = envi["zookeeper.version"]
    mntr = dict(ln.split("\t", 1) for ln in four_letter("127.0.0.1", port, "mntr").splitlines() if "\t" in ln)
    out["mntr"] = mntr["zk_version"]
    return out


def test_version_strings_same_shape_as_zookeeper(pair):
    zk = _version_lines(pair.zk.client_port)
    co = _version_lines(pair.coord.client_port)
    for word in ("srvr", "stat", "envi", "mntr"):
        mz, mc = FULL.match(zk[word]), FULL.match(co[word])
        assert mz, (word, zk[word])
        assert mc, (word, co[word])
        assert mz.group(1, 2) == ("3", "8"), zk[word]
        assert mc.group(1, 2, 3) == ("3", "8", "4")
        # the real coord version is visible in the same string
        assert mc.group(4) == f"coord-{__version__}"
    assert len(set(co.values())) == 1


def test_kazoo_server_version_accepts_coord(pair):
    for port, want in ((pair.zk.client_port, None), (pair.coord.client_port, (3, 8, 4))):
        c = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
        c.start(timeout=15)
        try:
            v = c.server_version()
            assert v[:2] == (3, 8)
            if want:
                assert v == want
        finally:
            c.stop()
            c.close()


def test_zkcli_style_version_parse(pair):
    """Tools (zkCli's `srvr` parsers, Prometheus exporters) take the part before '-' of the srvr
    line as x.y.z and compare; coord must compare as 3.8.4 and never as an older release."""
    for port in (pair.zk.client_port, pair.coord.client_port):
        line = four_letter("127.0.0.1", port, "srvr").splitlines()[0]
        ver = line.split(": ", 1)[1].split("-", 1)[0].split(",")[0]
        assert tuple(int(x) for x in ver.split(".")) >= (3, 8, 0)
