"""Fixtures for the security suite: real ZooKeeper 3.8 and coord configured identically for SASL.

Both read the same JAAS file the way ZooKeeper users pass it: the real server through its JVM flag
-Djava.security.auth.login.config, coord through SERVER_JVMFLAGS in its environment (as zkServer.sh
and the container images pass it). Both get the same zoo.cfg keys.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.conftest import Pair
from tests.support.coord_server import CoordProcess
from tests.support.real_zk import RealZooKeeper, free_port

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
NETTY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
USERS = {"super": "super_secret", "jaasuser": "jaas_password", "other": "other_password"}


def write_jaas(path: Path, client: tuple[str, str] | None = None, server_users=USERS) -> Path:
    lines = ["Server {", "    org.apache.zookeeper.server.auth.DigestLoginModule required"]
    lines += [f'    user_{u}="{p}"' for u, p in server_users.items()]
    lines[-1] += ";"
    lines.append("};")
    if client is not None:
        lines += ["Client {", "    org.apache.zookeeper.server.auth.DigestLoginModule required",
                  f'    username="{client[0]}"', f'    password="{client[1]}";', "};"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_sasl_pair(workdir: Path, jaas: Path | None, extra_cfg: dict | None = None,
                    jvm_props: dict | None = None, *, secure: bool = False) -> Pair:
    """A real ZooKeeper and a coord with the same zoo.cfg keys, JAAS file and -D properties; with
    `secure`, each also gets a secureClientPort (its port in `.secure_port`) on the Netty factory."""
    workdir = Path(workdir)
    cfg = {"authProvider.1": SASL_PROVIDER}
    cfg.update(extra_cfg or {})
    props = dict(jvm_props or {})
    if jaas is not None:
        props["java.security.auth.login.config"] = str(jaas)
    flags = [f"-D{k}={v}" for k, v in props.items()]
    zk_cfg, coord_cfg = dict(cfg), dict(cfg)
    if secure:
        zk_cfg.update(secureClientPort=str(free_port()), serverCnxnFactory=NETTY)
        coord_cfg.update(secureClientPort=str(free_port()), serverCnxnFactory=NETTY)
    zk = RealZooKeeper(workdir / "zk", extra_cfg=zk_cfg, jvm_flags=flags)
    coord = CoordProcess(workdir / "coord", extra_cfg=coord_cfg, env={"SERVER_JVMFLAGS": " ".join(flags)})
    if secure:
        zk.secure_port = int(zk_cfg["secureClientPort"])
        coord.secure_port = int(coord_cfg["secureClientPort"])
    try:
        zk.start()
        coord.start()
    except Exception:
        Pair(zk, coord).stop()
        raise
    return Pair(zk, coord)


@pytest.fixture(scope="module")
def sasl_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("sasl")
    p = start_sasl_pair(d, write_jaas(d / "jaas.conf"), jvm_props={"zookeeper.superUser": "super"})
    yield p
    p.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, server and client certificates and their stores (tests.security.certs)."""
    from tests.security.certs import Pki
    return Pki(tmp_path_factory.mktemp("pki"))


# -- Kerberos (tests/security/krb.py): a real MIT KDC, the realm's keytabs, a GSSAPI server pair --
from tests.support.kdc import kdc_fixture  # noqa: E402
from tests.security.krb import SERVER, make_realm, restore_env, use_client_env, write_krb_jaas  # noqa: E402

kdc = kdc_fixture()


@pytest.fixture(scope="module")
def realm(kdc, tmp_path_factory):
    r = make_realm(kdc, tmp_path_factory.mktemp("realm"))
    old = use_client_env(r)
    yield r
    restore_env(old)


def start_krb_pair(realm, d, extra_cfg=None, props=None, server=SERVER, keytab=None):
    """Real ZooKeeper and coord with the same Krb5LoginModule Server section and krb5.conf flag."""
    d.mkdir(parents=True, exist_ok=True)
    jaas = write_krb_jaas(d / "jaas.conf", server=(realm.principal(server), keytab or realm.server_keytab))
    return start_sasl_pair(d, jaas, extra_cfg, {**realm.jvm_props(), **(props or {})})


@pytest.fixture(scope="module")
def krb_pair(realm, tmp_path_factory):
    p = start_krb_pair(realm, tmp_path_factory.mktemp("gss"), props={"zookeeper.superUser": realm.principal("admin")})
    yield p
    p.stop()
