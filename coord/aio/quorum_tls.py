"""Quorum TLS: coord's peer links (quorum and election ports) as ZooKeeper 3.8 secures its own.

zoo.cfg keys, as QuorumPeerConfig and QuorumX509Util read them:

    sslQuorum=true               dial peers with TLS ("Using TLS encrypted quorum communication")
    portUnification=true         the quorum and election ports accept TLS and plain (first byte 0x16:
                                 TLS), for a rolling switch; ssl.quorum.handshakeDetectionTimeoutMillis
                                 (5000) bounds the wait for that first byte
    sslQuorumReloadCertFiles     rebuild the contexts when a key or trust store file changes
    ssl.quorum.*                 keyStore / trustStore (location, password, passwordPath, type),
                                 protocol, enabledProtocols, ciphersuites, clientAuth (need),
                                 hostnameVerification (true)

Mutual authentication: a peer is accepted only with a certificate that chains to the trust store,
and with hostnameVerification (the default) its certificate must name the peer's IP address
(ZooKeeper verifies both directions in the quorum: QuorumX509Util.shouldVerifyClientHostname). A
refused peer gets a log line naming it and why; only that connection closes.

This module makes the PeerTransport's connection factories; the peer protocol (coord.aio.peer)
never sees TLS.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from coord.aio.keystores import TlsConfigError
from coord.aio.tls import ContextSource, TlsProtocol, TlsSettings, client_context, server_context

log = logging.getLogger("coord.quorum_tls")

PREFIX = "ssl.quorum"
DETECT_TIMEOUT_MS = 5000   # X509Util.DEFAULT_HANDSHAKE_DETECTION_TIMEOUT_MILLIS


@dataclass
class QuorumTlsConfig:
    """The quorum TLS keys of one zoo.cfg (coord.aio.zoocfg fills it)."""
    ssl_quorum: bool = False
    port_unification: bool = False
    reload_cert_files: bool = False
    keys: dict = None            # the ssl.quorum.* keys, as written

    @property
    def active(self) -> bool:
        return self.ssl_quorum or self.port_unification

    def settings(self) -> TlsSettings:
        return TlsSettings.from_keys(self.keys or {}, prefix=PREFIX)

    def hostname_verification(self) -> bool:
        v = (self.keys or {}).get(PREFIX + ".hostnameVerification", "true").strip().lower()
        if v not in ("true", "false"):
            raise TlsConfigError(f"{PREFIX}.hostnameVerification must be true or false, got {v!r}")
        return v == "true"

    def detect_timeout_ms(self) -> int:
        v = (self.keys or {}).get(PREFIX + ".handshakeDetectionTimeoutMillis", str(DETECT_TIMEOUT_MS))
        try:
            n = int(v)
        except ValueError:
            raise TlsConfigError(f"{PREFIX}.handshakeDetectionTimeoutMillis must be an integer, got {v!r}") from None
        if n <= 0:
            raise TlsConfigError(f"{PREFIX}.handshakeDetectionTimeoutMillis must be positive, got {n}")
        return n

    def validate(self) -> None:
        """Start-up check: with sslQuorum the stores must load (ZooKeeper fails its first peer
        connection instead; coord refuses to start, naming the key)."""
        self.hostname_verification()
        self.detect_timeout_ms()
        s = self.settings()
        if self.ssl_quorum or s.key_store.location:
            server_context(s)
            client_context(s, False)


def certificate_names_ip(der: bytes, ip: str) -> bool:
    """ZKTrustManager's first check: an IP address in the subjectAltName equal to the peer's."""
    from cryptography import x509
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        want = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if want.version == 6 and want.ipv4_mapped is not None:
        want = want.ipv4_mapped
    return any(a == want for a in san.get_values_for_type(x509.IPAddress))


class QuorumTls:
    """Wraps the peer connections of one server: `accept(make)` for both listening ports, `dial(make,
    host, on_lost)` for links and pokes. Plain TCP passes through untouched when sslQuorum is off."""

    def __init__(self, qcfg: QuorumTlsConfig, handshake_timeout_ms: int | None = None):
        self.qcfg = qcfg
        self.settings = qcfg.settings()
        if handshake_timeout_ms is not None:
            self.settings.handshake_timeout_ms = handshake_timeout_ms
        self.verify_host = qcfg.hostname_verification()
        self.detect_ms = qcfg.detect_timeout_ms()
        self.server_ctx = self.client_ctx = None
        reload = qcfg.reload_cert_files
        if qcfg.ssl_quorum or self.settings.key_store.location:
            self.server_ctx = ContextSource(self.settings, server_context, reload)
            self.client_ctx = ContextSource(self.settings, lambda s: client_context(s, self.verify_host), reload)
        elif qcfg.port_unification:
            log.warning("portUnification=true without %s.keyStore.location: peers dialling with TLS "
                        "will be refused", PREFIX)
        if qcfg.ssl_quorum:
            log.info("Using TLS encrypted quorum communication")
        if qcfg.port_unification:
            log.info("Quorum and election ports accept TLS and plain connections (portUnification)")
        self.refused = 0   # peers closed during or right after the TLS handshake

    def _refused(self) -> None:
        self.refused += 1

    def _check_client(self, der: bytes, ip: str) -> str | None:
        if self.verify_host and not certificate_names_ip(der, ip):
            return (f"quorum peer certificate does not name {ip} (subjectAltName IP; "
                    f"{PREFIX}.hostnameVerification=true)")
        return None

    def _ctx(self, source):
        if source is None:
            raise ValueError(f"no {PREFIX}.keyStore configured")
        return source()

    def accept(self, make):
        """The protocol factory for a quorum or election listener."""
        if not self.qcfg.active:
            return make
        return lambda: TlsProtocol(lambda: self._ctx(self.server_ctx), self.settings, make,
                                   sniff=self.qcfg.port_unification, on_failure=self._refused,
                                   label="quorum peer", check_peer=self._check_client,
                                   detect_timeout_ms=self.detect_ms if self.qcfg.port_unification else None)

    def dial(self, make, host: str, on_lost=None, sid: int | None = None):
        """The protocol factory for a connection we make to peer `sid` at `host`."""
        if not self.qcfg.ssl_quorum:
            return make
        label = "quorum peer" if sid is None else f"quorum peer (sid {sid})"
        return lambda: TlsProtocol(self.client_ctx, self.settings, make, server_side=False,
                                   server_hostname=host, on_failure=self._refused, label=label,
                                   on_lost=on_lost)
