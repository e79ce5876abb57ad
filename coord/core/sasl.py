"""SASL on the client port (opcode 102): ZooKeeperServer.processSasl as a pure state machine.

Tokens in, tokens and identities out. One SaslExchange per connection, made at its first SASL
packet. With a JAAS `Server` section configured the mechanism is GSSAPI when the section logs a
Kerberos principal in (coord.core.gss_krb5, the GSS-API calls done by an acceptor the shell gives),
else DIGEST-MD5 (coord.core.digest_md5): one mechanism per server, as in ZooKeeper. On success the connection gains `sasl:<authorized id>` (and `super:` if the
id is a zookeeper.superUser). A failure answers AUTHFAILED with a null token and closes the
connection, as ZooKeeper does, unless allowSaslFailedClients keeps it open.

Without a SASL server ZooKeeper answers every packet with err 0 and a null token (its saslServer is
null; the NullPointerException is logged). The Java client then fails with AuthFailed; kazoo sends
another empty token, forever. coord answers the first packet exactly so, and a second one (only a
client looping like kazoo sends it) with AUTHFAILED and a close, so that such a client stops.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from coord.core.digest_md5 import DigestMD5Server, JvmFault, SaslFailure
from coord.core.gss_krb5 import GssKrb5Server
from coord.jute.protocol import Err

AUTHFAILED = int(Err.AUTHFAILED)
REQUIRES_SASL = int(Err.SESSIONCLOSEDREQUIRESASLAUTH)


@dataclass
class SaslConfig:
    """What ZooKeeper reads from the JAAS Server section and its zookeeper.* properties."""
    users: dict[str, str] = field(default_factory=dict)   # user_<name>="<password>"
    super_users: frozenset = frozenset()                   # zookeeper.superUser[.N]
    super_password: str | None = None                      # SASLAuthenticationProvider.superPassword
    remove_host: bool = False                              # kerberos.removeHostFromPrincipal
    remove_realm: bool = False                             # kerberos.removeRealmFromPrincipal
    allow_failed_clients: bool = False                     # allowSaslFailedClients
    required: bool = False                                 # enforce.auth names sasl: failures say -124
    default_realm: str = ""                                # the Kerberos default realm (none: "")
    nonce: Callable[[], bytes] | None = None               # 40 base64 chars; the shell's randomness
    gss: Callable[[], Any] | None = None                   # GSSAPI: a new gss_krb5.Acceptor (the shell's)

    def password_of(self, user: str) -> str | None:
        if user == "super" and self.super_password is not None:
            return self.super_password
        return self.users.get(user)


class SaslReply(NamedTuple):
    err: int                  # the ReplyHeader err (0 or AUTHFAILED)
    token: bytes | None       # the SetSASLResponse token (None: length -1)
    ids: tuple                # identities the connection gains: (("sasl", id), ("super", ""))
    close: bool               # close the connection after the reply
    log: str | None           # a line for the server log
    reply: bool = True        # False: close without any reply (an unchecked exception in ZooKeeper)


_KERBEROS = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)\Z")


def kerberos_valid(name: str) -> bool:
    """new KerberosName(name) does not throw: no '@', or primary[/host]@REALM."""
    return "@" not in name or _KERBEROS.match(name) is not None


def authorized_id(cfg: SaslConfig, authentication_id: str, authzid: str) -> str:
    """SaslServerCallbackHandler.handleAuthorizeCallback: the short name (auth_to_local DEFAULT rule:
    a principal of the default realm loses its realm), then '/host' and '@realm' unless removed.
    A name no rule maps keeps the client's authorization id, as AuthorizeCallback falls back."""
    m = _KERBEROS.match(authentication_id)
    if m is None:
        return authentication_id    # a simple name (KerberosName would throw on a bad '@' name)
    service, host, realm = m.group(1), m.group(3), m.group(4)
    if realm != cfg.default_realm:
        return authzid              # NoMatchingRule: the id stays the client's authzid
    out = service
    if host is not None and not cfg.remove_host:
        out += "/" + host
    if not cfg.remove_realm:
        out += "@" + realm
    return out


class SaslExchange:
    """One connection's SASL conversation. `cfg` None: no SASL server is configured."""

    def __init__(self, cfg: SaslConfig | None):
        self.cfg = cfg
        if cfg is None:
            self.mech = None
        elif cfg.gss is not None:
            self.mech = GssKrb5Server(cfg.gss())
        else:
            self.mech = DigestMD5Server(cfg.password_of, cfg.nonce())
        self.unconfigured_replies = 0

    def respond(self, token: bytes) -> SaslReply:
        cfg = self.cfg
        if cfg is None:
            self.unconfigured_replies += 1
            if self.unconfigured_replies == 1:
                return SaslReply(0, None, (), False, "SASL token but no SASL server is configured "
                                                     "(no JAAS Server section)")
            return SaslReply(AUTHFAILED, None, (), True, "repeated SASL token and no SASL server is "
                                                        "configured: closing")
        mech = self.mech
        try:
            out = mech.evaluate(token)
        except SaslFailure as e:
            if cfg.allow_failed_clients and not cfg.required:
                return SaslReply(0, None, (), False, f"client failed to SASL authenticate: {e}; "
                                                     "maintaining the connection (allowSaslFailedClients)")
            return SaslReply(REQUIRES_SASL if cfg.required else AUTHFAILED, None, (), True,
                             f"client failed to SASL authenticate: {e}")
        except JvmFault as e:
            return SaslReply(0, None, (), True, f"unexpected exception in SASL: {e}", reply=False)
        ids: tuple = ()
        line = None
        if mech.complete:
            ident = authorized_id(cfg, mech.username, mech.authzid)
            ids = (("sasl", ident),)
            line = f"adding SASL authorization for authorizationID: {ident}"
            if ident and ident in cfg.super_users:
                ids += (("super", ""),)
                line += " (super user)"
        return SaslReply(0, out, ids, False, line)
