"""Kerberos for the security suite: a realm (tests.support.kdc) with the server's and clients'
principals and keytabs, JAAS files as ZooKeeper users write them, and a raw GSSAPI SASL client.

Real ZooKeeper and coord get the same JAAS file and the same -Djava.security.krb5.conf flag (the
JVM's way to name the realm's krb5.conf; coord reads it from SERVER_JVMFLAGS). In-process clients
(kazoo through pure-sasl + pykerberos, and `GssClient` on python-gssapi) take their keys from a
client keytab (KRB5_CLIENT_KTNAME) and keep tickets in a ccache collection of their own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.security.saslraw import Step, step
from tests.support.kdc import Kdc

SERVICE_HOST = "localhost"               # clients connect to localhost: the service principal's host
SERVER = f"zookeeper/{SERVICE_HOST}"
CLIENTS = ("client", "other", "admin", f"kafka/{SERVICE_HOST}")
KRB5_MODULE = "com.sun.security.auth.module.Krb5LoginModule"


@dataclass
class Realm:
    kdc: Kdc
    dir: Path
    server_keytab: Path
    client_keytab: Path

    def principal(self, name: str) -> str:
        return self.kdc.principal(name)

    def jvm_props(self) -> dict[str, str]:
        return {"java.security.krb5.conf": str(self.kdc.krb5_conf)}

    def keytab_of(self, name: str) -> Path:
        """A keytab with this one client principal (for a Java client's JAAS section)."""
        p = self.dir / (name.replace("/", "_") + ".keytab")
        if not p.exists():
            self.kdc.export(name, p)
        return p


def make_realm(kdc: Kdc, d: Path, server: str = SERVER) -> Realm:
    d.mkdir(parents=True, exist_ok=True)
    server_kt = d / "server.keytab"
    if server_kt.exists():
        server_kt.unlink()
    try:
        kdc.add_principal(server, server_kt)
    except RuntimeError as e:           # already made by another module sharing the KDC
        if "already exists" not in str(e):
            raise
        kdc.export(server, server_kt)
    client_kt = d / "clients.keytab"
    for c in CLIENTS:
        try:
            kdc.add_principal(c)
        except RuntimeError as e:
            if "already exists" not in str(e):
                raise
        kdc.export(c, client_kt)
    return Realm(kdc, d, server_kt, client_kt)


def use_client_env(realm: Realm) -> dict[str, str | None]:
    """Point this process's Kerberos library at the realm; the previous values (to restore)."""
    new = {"KRB5_CONFIG": str(realm.kdc.krb5_conf), "KRB5_CLIENT_KTNAME": str(realm.client_keytab),
           "KRB5CCNAME": f"DIR:{realm.dir / 'ccache'}", "KRB5RCACHEDIR": str(realm.dir)}
    (realm.dir / "ccache").mkdir(exist_ok=True)
    old = {k: os.environ.get(k) for k in new}
    os.environ.update(new)
    return old


def restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def write_krb_jaas(path: Path, server: tuple[str, Path] | None = None,
                   client: tuple[str, Path] | None = None) -> Path:
    """Server and/or Client sections with Krb5LoginModule, as ZooKeeper's admin guide writes them."""
    out = []
    for section, entry in (("Server", server), ("Client", client)):
        if entry is None:
            continue
        principal, keytab = entry
        out += [f"{section} {{", f"    {KRB5_MODULE} required", "    useKeyTab=true",
                f'    keyTab="{keytab}"', "    storeKey=true", "    useTicketCache=false",
                f'    principal="{principal}";', "};"]
    path.write_text("\n".join(out) + "\n")
    return path


class GssClient:
    """The client side of SASL GSSAPI by hand (python-gssapi), so that a test can send each token
    itself, or a broken one: `first()` is the AP-REQ, `layers(challenge)` answers the server's
    security-layer offer with `choice` (qop byte, buffer size, authzid)."""

    def __init__(self, principal: str, service: str = f"zookeeper@{SERVICE_HOST}"):
        import gssapi
        self.g = gssapi
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
        creds = gssapi.Credentials(usage="initiate", name=name)
        target = gssapi.Name(service, gssapi.NameType.hostbased_service)
        flags = [gssapi.RequirementFlag.mutual_authentication, gssapi.RequirementFlag.out_of_sequence_detection]
        self.ctx = gssapi.SecurityContext(name=target, creds=creds, usage="initiate", flags=flags)

    def first(self) -> bytes:
        return self.ctx.step()

    def finish(self, token: bytes) -> None:
        self.ctx.step(token)

    def offered(self, challenge: bytes) -> bytes:
        return self.ctx.unwrap(challenge).message

    def reply(self, plain: bytes) -> bytes:
        return self.ctx.wrap(plain, False).message


def gss_login(c, principal: str, *, qop: int = 1, authzid: str = "", record: list | None = None,
              service: str = f"zookeeper@{SERVICE_HOST}") -> list[Step]:
    """The whole exchange on a raw session (tests.compat.rawclient), as the Java client runs it:
    AP-REQ, empty token after the AP-REP, then the chosen layer. `record` gets the tokens sent;
    `service` is the server's host-based name (zookeeper@<the host the client connected to>)."""
    cli = GssClient(principal, service)
    steps = []

    def send(tok):
        if record is not None:
            record.append(tok)
        s = step(c, tok, check_close=0)
        steps.append(s)
        return s
    s = send(cli.first())
    if s.err != 0 or s.token is None:
        return steps
    cli.finish(s.token)
    s = send(b"")
    if s.err != 0 or s.token is None:
        return steps
    offer = cli.offered(s.token)
    send(cli.reply(bytes([qop]) + offer[1:4] + authzid.encode()))
    return steps


def run_zkcli_krb(realm: Realm, hostport: str, jaas: Path, commands: list[str],
                  extra_flags: tuple[str, ...] = (), timeout: float = 90.0) -> list[str]:
    """zkCli.sh with a JAAS Client section (Krb5LoginModule, keytab) and the realm's krb5.conf."""
    from tests.security.test_sasl_zkcli import run_zkcli
    flags = [f"-D{k}={v}" for k, v in realm.jvm_props().items()] + list(extra_flags)
    return run_zkcli(hostport, jaas, commands, timeout=timeout, extra_flags=flags)
