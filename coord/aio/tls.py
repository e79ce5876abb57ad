"""Client-port TLS as ZooKeeper 3.8's Netty server configures it: keys, contexts, listeners.

`TlsSettings.from_keys` reads the `ssl.*` keys of zoo.cfg (ZooKeeper's names and defaults: TLSv1.2
only, its 12 ECDHE suites, clientAuth need); `server_context` builds an ssl.SSLContext from the key
and trust stores (coord.aio.keystores: PEM, PKCS12, JKS). `TlsProtocol` runs
TLS in memory (ssl.MemoryBIO) around the plain ClientProtocol, so one code path serves the
secureClientPort and a unified clientPort (first byte 0x16: TLS, anything else: plain, as Netty's
DualModeSslHandler decides). After the handshake the client certificate's subject becomes
`x509:<DN>` in Java's RFC 2253 form (coord.core.x509name); the core learns only that identity.
A handshake that fails, stalls past the timeout, or garbage in place of TLS records closes only
that connection.
"""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field

from coord.aio.keystores import Store, TlsConfigError, load_key_store, load_trust_store
from coord.core.x509name import BadName, java_rfc2253, rdns_from_der

log = logging.getLogger("coord.tls")

# X509Util.getDefaultCipherSuitesForJavaVersion (Java 9+): GCM first, then CBC; IANA -> OpenSSL.
IANA_TO_OPENSSL = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": "ECDHE-ECDSA-AES256-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": "ECDHE-RSA-AES256-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256": "AES256-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
DEFAULT_CIPHERSUITES = tuple(list(IANA_TO_OPENSSL)[:12])
# TLS 1.3 suites are named alike in both schemes; OpenSSL's set_ciphers cannot restrict them.
TLS13_SUITES = frozenset(("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"))
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_OLD_VERSIONS = ("TLSv1", "TLSv1.1", "SSLv3", "SSLv2Hello")
_CLIENT_AUTH = {"need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
_OP_NO_RENEGOTIATION = getattr(ssl, "OP_NO_RENEGOTIATION", 0x40000000)  # PyPy's ssl lacks the name
HANDSHAKE_TIMEOUT_MS = 10_000   # Netty SslHandler's default handshake timeout

try:
    # PyPy's ssl leaves a failed call's error in OpenSSL's per-thread error queue, where the next
    # call on ANOTHER connection reads it as its own failure (one client's garbage closed others).
    from _cffi_ssl._stdssl import lib as _openssl
    _clear_openssl_errors = _openssl.ERR_clear_error
except (ImportError, AttributeError):   # CPython clears the queue itself
    def _clear_openssl_errors() -> None:
        pass


@dataclass
class TlsSettings:
    key_store: Store = field(default_factory=Store)
    trust_store: Store = field(default_factory=Store)
    protocol: str = "TLSv1.2"
    enabled_protocols: tuple[str, ...] | None = None
    ciphersuites: tuple[str, ...] | None = None
    client_auth: str = "need"
    super_user: str | None = None       # X509AuthenticationProvider.superUser
    handshake_timeout_ms: int = HANDSHAKE_TIMEOUT_MS
    prefix: str = "ssl"                 # the zoo.cfg key prefix, for error messages (ssl.quorum)
    crl: bool = False                   # ssl.crl: peer certificates checked against their CRLs (revocation.py)
    ocsp: bool = False                  # ssl.ocsp: ... asking their OCSP responder first

    @classmethod
    def from_keys(cls, keys: dict[str, str], prefix: str = "ssl") -> "TlsSettings":
        """The ssl.* keys (without the zookeeper. prefix) into settings; TlsConfigError names a bad one.
        With prefix "ssl.quorum" the ssl.quorum.* keys are read instead (the same sub-keys)."""
        s = cls(prefix=prefix)
        for name, v in keys.items():
            k = name
            if prefix != "ssl":
                if not name.startswith(prefix + "."):
                    continue
                k = "ssl" + name[len(prefix):]
            parts = k.split(".")
            if len(parts) == 3 and parts[0] == "ssl" and parts[1] in ("keyStore", "trustStore"):
                store = s.key_store if parts[1] == "keyStore" else s.trust_store
                attr = {"location": "location", "password": "password", "passwordPath": "password_path",
                        "type": "type"}.get(parts[2])
                if attr is None:
                    raise TlsConfigError(f"{name}: unknown key")
                setattr(store, attr, v)
            elif k == "ssl.protocol":
                s.protocol = v.strip()
            elif k == "ssl.enabledProtocols":
                s.enabled_protocols = tuple(p.strip() for p in v.split(",") if p.strip())
            elif k == "ssl.ciphersuites":
                s.ciphersuites = tuple(c.strip() for c in v.split(",") if c.strip())
            elif k == "ssl.clientAuth":
                ca = v.strip().lower() or "need"
                if ca not in _CLIENT_AUTH:
                    raise TlsConfigError(f"{name} must be need, want or none, got {v!r}")
                s.client_auth = ca
            elif k in ("ssl.crl", "ssl.ocsp"):
                on = v.strip().lower()
                if on not in ("true", "false"):
                    raise TlsConfigError(f"{name} must be true or false, got {v!r}")
                setattr(s, k[len("ssl."):], on == "true")
            elif k == "ssl.context.supplier.class" and v.strip():
                raise TlsConfigError(f"{name}={v.strip()}: names a Java class (an SSLContext supplier) that coord "
                                     f"cannot load; configure the key and trust stores instead")
            elif k == "X509AuthenticationProvider.superUser":
                s.super_user = v
            elif k == "coord.tlsHandshakeTimeoutMs":
                try:
                    s.handshake_timeout_ms = int(v)
                except ValueError:
                    raise TlsConfigError(f"{name} must be an integer, got {v!r}") from None
        return s

    def versions(self) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
        """(minimum, maximum) from ssl.enabledProtocols (default: ssl.protocol alone, as 3.8)."""
        if self.protocol not in _VERSIONS and self.protocol != "TLS":
            raise TlsConfigError(f"{self.prefix}.protocol {self.protocol!r}: coord serves TLSv1.2 and TLSv1.3")
        default = ("TLSv1.2", "TLSv1.3") if self.protocol == "TLS" else (self.protocol,)
        names = self.enabled_protocols or default
        unknown = [n for n in names if n not in _VERSIONS and n not in _OLD_VERSIONS]
        if unknown:
            raise TlsConfigError(f"{self.prefix}.enabledProtocols: unknown protocol(s) {', '.join(unknown)}")
        old = [n for n in names if n in _OLD_VERSIONS]
        if old:
            log.warning("%s.enabledProtocols: %s not served (TLSv1.2 and TLSv1.3 only)", self.prefix, ", ".join(old))
        vs = sorted(_VERSIONS[n] for n in names if n in _VERSIONS)
        if not vs:
            raise TlsConfigError(f"{self.prefix}.enabledProtocols names neither TLSv1.2 nor TLSv1.3")
        return vs[0], vs[-1]

    def openssl_ciphers(self) -> str:
        suites = self.ciphersuites or DEFAULT_CIPHERSUITES
        bad = [c for c in suites if c not in IANA_TO_OPENSSL and c not in TLS13_SUITES]
        if bad:
            raise TlsConfigError(f"{self.prefix}.ciphersuites: unsupported suite(s) {', '.join(bad)}")
        names = [IANA_TO_OPENSSL[c] for c in suites if c in IANA_TO_OPENSSL]
        return ":".join(names)


def _base_context(s: TlsSettings, purpose) -> ssl.SSLContext:
    """Protocol versions, cipher suites, no renegotiation, our own key and certificate chain."""
    from cryptography.hazmat.primitives import serialization
    pkey, chain = load_key_store(s.key_store, s.prefix + ".keyStore")
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version, ctx.maximum_version = s.versions()
    try:
        ctx.set_ciphers(s.openssl_ciphers())
    except ssl.SSLError as e:
        raise TlsConfigError(f"{s.prefix}.ciphersuites: OpenSSL refused them: {e}") from None
    ctx.options |= _OP_NO_RENEGOTIATION
    # load_cert_chain reads files: the key goes to a private temporary file, encrypted.
    secret = os.urandom(24).hex().encode()
    with tempfile.TemporaryDirectory(prefix="coord-tls-") as d:
        path = os.path.join(d, "key.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(pkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(secret)))
            for c in chain:
                f.write(c.public_bytes(serialization.Encoding.PEM))
        try:
            ctx.load_cert_chain(path, password=secret)
        except ssl.SSLError as e:
            raise TlsConfigError(f"{s.prefix}.keyStore.location {s.key_store.location}: key and certificate "
                                 f"do not match: {e}") from None
    return ctx


def _trust(ctx: ssl.SSLContext, s: TlsSettings) -> None:
    ctx.load_verify_locations(cadata=load_trust_store(s.trust_store, s.prefix + ".trustStore"))


def server_context(s: TlsSettings) -> ssl.SSLContext:
    """An SSLContext for a listening port; TlsConfigError names what is wrong."""
    ctx = _base_context(s, ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = _CLIENT_AUTH[s.client_auth]
    if s.client_auth != "none":
        if not s.trust_store.location:
            raise TlsConfigError(f"{s.prefix}.clientAuth={s.client_auth} needs {s.prefix}.trustStore.location")
        _trust(ctx, s)
    return ctx


def client_context(s: TlsSettings, check_hostname: bool) -> ssl.SSLContext:
    """An SSLContext for dialling a TLS port with our certificate (mutual TLS): the server's
    certificate must chain to the trust store and, with check_hostname, name the address dialled."""
    ctx = _base_context(s, ssl.PROTOCOL_TLS_CLIENT)
    if not s.trust_store.location:
        raise TlsConfigError(f"{s.prefix}.trustStore.location is not set (needed to check the peer)")
    _trust(ctx, s)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def x509_identities(cert_der: bytes, super_user: str | None) -> tuple:
    """X509AuthenticationProvider: ('super', DN) if the DN is the super user, then ('x509', DN)."""
    from cryptography import x509
    cert = x509.load_der_x509_certificate(cert_der)
    dn = java_rfc2253(rdns_from_der(cert.subject.public_bytes()))
    ids = (("x509", dn),)
    if super_user is not None and dn == super_user:
        ids = (("super", dn),) + ids
    return ids


# -- the connection ---------------------------------------------------------------------------------
class _TlsTransport(asyncio.Transport):
    """What the plain protocol writes to: bytes go through the SSLObject to the socket."""

    def __init__(self, owner: "TlsProtocol"):
        super().__init__()
        self.owner = owner

    def write(self, data) -> None:
        o = self.owner
        if o.closed:
            return
        try:
            o.sslobj.write(data)
        except ssl.SSLError as e:
            o.fail(f"TLS write failed: {e}")
            return
        o.flush_out()

    def writelines(self, chunks) -> None:
        self.write(b"".join(chunks))

    def close(self) -> None:
        o = self.owner
        if o.closed:
            return
        try:
            o.sslobj.unwrap()
        except (ssl.SSLError, ValueError):
            _clear_openssl_errors()
        o.flush_out()
        o.closed = True
        o.transport.close()

    def abort(self) -> None:
        self.owner.closed = True
        self.owner.transport.abort()

    def is_closing(self) -> bool:
        return self.owner.closed or self.owner.transport.is_closing()

    def pause_reading(self) -> None:
        self.owner.transport.pause_reading()

    def resume_reading(self) -> None:
        self.owner.transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self.owner.transport.get_write_buffer_size()

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self.owner.sslobj
        if name == "identities":
            return self.owner.identities
        return self.owner.transport.get_extra_info(name, default)


# Every TlsProtocol of the process reads its TLS records into this one buffer: what a read brought is
# copied into the connection's MemoryBIO before buffer_updated returns. A plain Protocol's transport
# would allocate recv(256 KiB) per read instead, on PyPy a non-moving object each time: the largest
# input of major collections under load (coord.aio.server.ClientProtocol, issue 17).
TLS_READ_BYTES = 256 * 1024
_records = memoryview(bytearray(TLS_READ_BYTES))


class TlsProtocol(asyncio.BufferedProtocol):
    """One connection: TLS in memory around `make_plain()`'s protocol. With `sniff`, a first byte
    other than 0x16 hands the connection to the plain protocol as it is (`detect_timeout_ms` bounds
    the wait for that byte). `ctx()` gives the current SSLContext (ContextSource). Accepted by
    default; `server_side=False` dials (with `server_hostname` for the hostname check).
    `check_peer(der, remote_ip)` may refuse a verified peer certificate (a reason, or None);
    `on_lost()` is called when the connection ends before the plain protocol was made.

    Buffered on both sides: records are read into one shared buffer (`_records`), and decrypted
    bytes are read straight into the plain protocol's own buffer when it is a BufferedProtocol (the
    client connection's and the peer link's are), so a read allocates nothing per call."""

    def __init__(self, ctx, settings: TlsSettings, make_plain, *, sniff: bool = False,
                 on_failure=None, server_side: bool = True, server_hostname: str | None = None,
                 label: str = "client", check_peer=None, detect_timeout_ms: int | None = None,
                 on_lost=None, refuse=None, on_handshake_failure=None):
        self.ctx = ctx
        self.settings = settings
        self.make_plain = make_plain
        self.sniff = sniff
        self.on_failure = on_failure
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.label = label
        self.check_peer = check_peer
        self.detect_timeout_ms = detect_timeout_ms
        self.on_lost = on_lost
        self.refuse = refuse           # refuse(transport): True closes it before any handshake (maxCnxns)
        self.on_handshake_failure = on_handshake_failure   # a failure before the inner protocol exists
        self.transport = None
        self.sslobj = None
        self.incoming = self.outgoing = None
        self.inner = None
        self.timer = None
        self.closed = False
        self.checking = False          # the peer's revocation status is being fetched (ssl.crl)
        self.identities: tuple = ()
        self.remote = "?"

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.remote = f"{peer[0]}:{peer[1]}"
        self.remote_ip = peer[0]
        if self.refuse is not None and self.refuse(transport):
            self.closed = True
            transport.abort()
            return
        if not self.sniff:
            self._start_tls()
        elif self.detect_timeout_ms is not None:
            self.timer = asyncio.get_running_loop().call_later(self.detect_timeout_ms / 1000, self._detect_timeout)

    def _detect_timeout(self) -> None:
        self.timer = None
        if self.sslobj is None and not self.closed:
            self.fail(f"nothing received in {self.detect_timeout_ms} ms (TLS or plain?)")

    def _start_tls(self) -> bool:
        if self.timer is not None:
            self.timer.cancel()
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            self.sslobj = self.ctx().wrap_bio(self.incoming, self.outgoing, server_side=self.server_side,
                                              server_hostname=self.server_hostname)
        except (ssl.SSLError, ValueError) as e:   # e.g. no context: a unified port without a key store
            self.sslobj = None
            self.fail(f"cannot start TLS: {e}")
            return False
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.settings.handshake_timeout_ms / 1000, self._handshake_timeout)
        if not self.server_side:
            self._handshake()   # the ClientHello
        return True

    def _handshake_timeout(self) -> None:
        self.timer = None
        if self.inner is None and not self.closed:
            self.fail(f"TLS handshake not finished in {self.settings.handshake_timeout_ms} ms")

    def fail(self, why: str) -> None:
        _clear_openssl_errors()
        if self.closed:
            return
        log.warning("closing %s %s: %s", self.label, self.remote, why)
        if self.on_failure is not None:
            self.on_failure()
        if self.on_handshake_failure is not None and self.inner is None:
            self.on_handshake_failure()
        self.closed = True
        self.transport.abort()

    def flush_out(self) -> None:
        data = self.outgoing.read()
        if data:
            self.transport.write(data)

    def get_buffer(self, sizehint: int):
        return _records

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_records[:nbytes])

    def data_received(self, data) -> None:
        """data: bytes, or a view of the shared record buffer, copied before this returns."""
        if self.closed:
            return
        if self.sslobj is None:   # sniffing a unified port
            if data[0] != 0x16:
                if self.timer is not None:
                    self.timer.cancel()
                    self.timer = None
                plain = self.make_plain()
                self.transport.set_protocol(plain)
                plain.connection_made(self.transport)
                plain.data_received(bytes(data))   # once per connection; a peer link keeps slices
                return
            if not self._start_tls():
                return
        self.incoming.write(data)
        if self.checking:
            return               # read once the revocation check lets the connection in
        if self.inner is None:
            if not self._handshake():
                return
        self._read()

    def _handshake(self) -> bool:
        """One handshake step; True once it is done and the plain protocol is made."""
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self.flush_out()
            return False
        except (ssl.SSLError, OSError) as e:
            self.flush_out()   # the alert, if OpenSSL made one
            self.fail(f"TLS handshake failed: {e}")
            return False
        self.flush_out()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self._identify():
            return False
        der = self.sslobj.getpeercert(binary_form=True) if self.settings.crl or self.settings.ocsp else None
        if der is not None:
            self.checking = True
            asyncio.ensure_future(self._check_revocation(der))
            return False
        self._admit()
        return True

    def _admit(self) -> None:
        self.inner = self.make_plain()
        self.inner.connection_made(_TlsTransport(self))

    async def _check_revocation(self, der: bytes) -> None:
        from coord.aio.revocation import refusal
        try:
            why = await refusal(der, self.settings)
        except Exception as e:  # noqa: BLE001 (an unreadable CRL or store: status unknown)
            why = f"revocation status unknown: {e}"
        self.checking = False
        if self.closed:
            return
        if why:
            self.fail(f"{self.label} certificate refused: {why}")
            return
        self._admit()
        self._read()

    def _identify(self) -> bool:
        der = self.sslobj.getpeercert(binary_form=True)
        if der is None:
            return True   # clientAuth none, or want without a certificate: only the ip id
        try:
            self.identities = x509_identities(der, self.settings.super_user)
        except (BadName, ValueError) as e:
            self.fail(f"{self.label} certificate subject unreadable: {e}")
            return False
        if self.check_peer is not None:
            why = self.check_peer(der, self.remote_ip)
            if why:
                self.fail(why)
                return False
        log.info("%s: TLS %s certificate %s", self.remote, self.label, self.identities[-1][1])
        return True

    def _read(self) -> None:
        inner = self.inner
        buffered = isinstance(inner, asyncio.BufferedProtocol)
        while not self.closed:
            room = inner.get_buffer(-1) if buffered else None
            try:
                got = self.sslobj.read(len(room), room) if buffered else self.sslobj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.flush_out()
                self.closed = True
                self.transport.close()
                return
            except (ssl.SSLError, OSError) as e:
                self.fail(f"bad TLS record: {e}")
                return
            if not got:
                break
            if buffered:
                inner.buffer_updated(got)
            else:
                inner.data_received(got)
        if not self.closed:
            self.flush_out()

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.inner is not None:
            self.inner.connection_lost(exc)
        elif self.on_lost is not None:
            self.on_lost()

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


# -- listeners --------------------------------------------------------------------------------------
class ContextSource:
    """The server SSLContext, rebuilt when a store (or password) file changes: a new connection
    checks the files' mtime and size at most once per CHECK_S. A store that no longer loads keeps
    the previous context, with a log line. (ZooKeeper 3.8 reloads only quorum certificates.)"""

    CHECK_S = 1.0

    def __init__(self, settings: TlsSettings, build=server_context, reload: bool = True):
        self.settings = settings
        self.build = build
        self.reload = reload
        self.ctx = build(settings)
        self.stamp = self._stamp()
        self.next_check = time.monotonic() + self.CHECK_S

    def _stamp(self) -> tuple:
        out = []
        for store in (self.settings.key_store, self.settings.trust_store):
            for path in (store.location, store.password_path):
                try:
                    st = os.stat(path) if path else None
                except OSError:
                    st = None
                out.append((st.st_mtime_ns, st.st_size) if st else None)
        return tuple(out)

    def __call__(self) -> ssl.SSLContext:
        now = time.monotonic()
        if self.reload and now >= self.next_check:
            self.next_check = now + self.CHECK_S
            stamp = self._stamp()
            if stamp != self.stamp:
                self.stamp = stamp
                try:
                    self.ctx = self.build(self.settings)
                    log.info("%s: TLS key or trust store changed: certificates reloaded", self.settings.prefix)
                except TlsConfigError as e:
                    log.warning("TLS store changed but does not load, keeping the previous one: %s", e)
        return self.ctx


def client_factories(cfg, make_plain, *, on_handshake_failure=None, refuse=None):
    """(factory for clientPort, factory for secureClientPort or None) from a ServerConfig: plain
    as before unless client.portUnification; TLS on the secure port when secureClientPort is set.
    on_handshake_failure and refuse go to every TlsProtocol (see there)."""
    if cfg.secure_client_port is None and not cfg.client_port_unification:
        return make_plain, None
    settings = TlsSettings.from_keys(cfg.ssl)
    ctx = ContextSource(settings)
    plain = make_plain
    if cfg.client_port_unification:
        plain = lambda: TlsProtocol(ctx, settings, make_plain, sniff=True,  # noqa: E731
                                    on_handshake_failure=on_handshake_failure, refuse=refuse)
    secure = None
    if cfg.secure_client_port is not None:
        secure = lambda: TlsProtocol(ctx, settings, make_plain,  # noqa: E731
                                     on_handshake_failure=on_handshake_failure, refuse=refuse)
    return plain, secure


async def secure_listener(loop, cfg, factory):
    """The secureClientPort listener (None without one)."""
    if factory is None:
        return None
    host = cfg.secure_client_port_address or cfg.client_port_address
    srv = await loop.create_server(factory, host=host, port=cfg.secure_client_port, reuse_address=True,
                                   backlog=1024)
    sock = srv.sockets[0].getsockname()
    log.info("serving TLS on %s:%d (secureClientPort)", sock[0], sock[1])
    return srv
