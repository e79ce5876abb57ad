"""GSS-API acceptors for SASL GSSAPI (coord.core.gss_krb5), on MIT Kerberos through PyPI `gssapi`.

The server's keys come from the JAAS Server section's Krb5LoginModule (principal, keyTab); its
Kerberos configuration from -Djava.security.krb5.conf when ZooKeeper's JVM flags give one (it
becomes KRB5_CONFIG for the library, so coord and a ZooKeeper JVM read the same file), else the
library's own (KRB5_CONFIG, /etc/krb5.conf).

MIT's acceptor keeps no replay cache for mutual-authentication requests, which every ZooKeeper
client sends; the JDK's acceptor refuses a replayed AP-REQ ("Request is a replay"). ReplayCache
keeps the initial tokens seen within the clock skew (300 s, Kerberos' default) so that coord
refuses a replay at the same step as ZooKeeper.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from collections import deque

from coord.aio.jaas import KerberosLogin
from coord.core.gss_krb5 import GssFailure

CLOCK_SKEW_S = 300.0


class GssConfigError(ValueError):
    pass


def _gssapi():
    import warnings
    try:
        with warnings.catch_warnings():   # Cython's note on PyPy (cython.collection_type): harmless
            warnings.simplefilter("ignore", RuntimeWarning)
            import gssapi
    except ImportError as e:
        raise GssConfigError(f"GSSAPI needs the `gssapi` package (pip install gssapi; it builds against "
                             f"libkrb5-dev): {e}") from None
    return gssapi


def use_krb5_conf(path: str | None) -> None:
    """-Djava.security.krb5.conf: the same file for the Kerberos library, before its first use."""
    if path:
        if not os.path.isfile(path):
            raise GssConfigError(f"java.security.krb5.conf={path}: no such file")
        os.environ["KRB5_CONFIG"] = path


def default_realm(path: str | None = None) -> str:
    """[libdefaults] default_realm of the Kerberos configuration ("" without one, as the JVM's
    KerberosName falls back to): the realm whose principals lose it in their short name."""
    files = [path] if path else (os.environ.get("KRB5_CONFIG") or "/etc/krb5.conf").split(":")
    for f in files:
        try:
            text = open(f, encoding="utf-8").read()
        except OSError:
            continue
        section = None
        for line in text.splitlines():
            line = line.split("#", 1)[0].split(";", 1)[0].strip()
            m = re.match(r"\[(\w+)\]", line)
            if m:
                section = m.group(1)
            elif section == "libdefaults":
                k, eq, v = line.partition("=")
                if eq and k.strip() == "default_realm":
                    return v.strip()
    return ""


class ReplayCache:
    """Initial tokens (AP-REQs) accepted within the clock skew; a second one is a replay. Entries
    expire in the order they came (one window for all), so pruning pops from the front."""

    def __init__(self, window_s: float = CLOCK_SKEW_S, clock=time.monotonic):
        self.window = window_s
        self.clock = clock
        self.order: deque = deque()          # (expiry, key), oldest first
        self.seen: set[bytes] = set()

    def check(self, token: bytes) -> None:
        now = self.clock()
        while self.order and self.order[0][0] <= now:
            self.seen.discard(self.order.popleft()[1])
        key = hashlib.sha256(token).digest()
        if key in self.seen:
            raise GssFailure("Request is a replay (34)")
        self.seen.add(key)
        self.order.append((now + self.window, key))


class MitAcceptor:
    """One acceptor context (coord.core.gss_krb5.Acceptor) on the server's credentials."""
    __slots__ = ("gssapi", "creds", "replays", "ctx", "established", "initiator")

    def __init__(self, gssapi, creds, replays: ReplayCache):
        self.gssapi = gssapi
        self.creds = creds
        self.replays = replays
        self.ctx = None
        self.established = False
        self.initiator = None

    def step(self, token: bytes) -> bytes | None:
        g = self.gssapi
        try:
            if self.ctx is None:
                self.ctx = g.SecurityContext(creds=self.creds, usage="accept")
            out = self.ctx.step(token)
            if self.ctx.complete:
                self.replays.check(token)
                self.established = True
                self.initiator = str(self.ctx.initiator_name)
        except Exception as e:   # GSSError; anything else the library raises on a bad token, too
            raise GssFailure(_message(e)) from None
        return out or None

    def wrap(self, data: bytes) -> bytes:
        try:
            return self.ctx.wrap(data, False).message
        except Exception as e:
            raise GssFailure(_message(e)) from None

    def unwrap(self, token: bytes) -> bytes:
        try:
            return self.ctx.unwrap(token).message
        except Exception as e:
            raise GssFailure(_message(e)) from None


def _message(e: Exception) -> str:
    text = " ".join(str(e).split())
    if isinstance(e, GssFailure) or type(e).__module__.startswith("gssapi"):
        return text
    return f"{type(e).__name__}: {text}"


class Acceptors:
    """The server's Kerberos login: its credentials, acquired once (a missing keytab, or one without
    the principal's key, stops the start as ZooKeeper's failed login does), and a new acceptor for
    each connection's exchange."""

    def __init__(self, login: KerberosLogin, krb5_conf: str | None = None):
        use_krb5_conf(krb5_conf)
        g = self.gssapi = _gssapi()
        self.principal = login.principal
        if login.keytab is not None and not os.access(login.keytab, os.R_OK):
            raise GssConfigError(f"keyTab {login.keytab}: cannot read it (Krb5LoginModule for "
                                 f"{login.principal})")
        store = {"keytab": login.keytab} if login.keytab else None
        try:
            name = g.Name(login.principal, g.NameType.kerberos_principal)
            self.creds = g.Credentials(usage="accept", name=name, store=store)
            self.creds.inquire()
            _self_test(g, self.creds, login)
        except g.exceptions.GSSError as e:
            raise GssConfigError(f"Kerberos login as {login.principal} with keyTab {login.keytab}: "
                                 f"{_message(e)}") from None
        self.replays = ReplayCache()

    def __call__(self) -> MitAcceptor:
        return MitAcceptor(self.gssapi, self.creds, self.replays)


def _self_test(g, creds, login: KerberosLogin) -> None:
    """Log in from the keytab and accept a context to ourselves: the JVM's Krb5LoginModule fetches a
    TGT at start, so a missing key, a stale key (kvno) or an unreachable KDC stops ZooKeeper's start;
    MIT would only notice at the first client."""
    store = {"client_keytab": login.keytab} if login.keytab else {}
    store["ccache"] = f"MEMORY:coord-selftest-{os.getpid()}"
    name = g.Name(login.principal, g.NameType.kerberos_principal)
    init = g.SecurityContext(name=name, usage="initiate",
                             creds=g.Credentials(usage="initiate", name=name, store=store))
    acc = g.SecurityContext(creds=creds, usage="accept")
    acc.step(init.step())
    if not acc.complete:
        raise GssConfigError(f"Kerberos self-test as {login.principal}: context not established")
