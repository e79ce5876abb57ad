"""Test PKI made in the test: a CA, a server certificate for 127.0.0.1, client certificates, a
second CA nobody trusts, in every store format ZooKeeper reads (PEM, PKCS12, JKS; JKS and the
Java-readable trust stores through keytool, as ZooKeeper users make them)."""
from __future__ import annotations

import datetime
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

PASSWORD = "store-secret"


def _name(*attrs) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, v) for oid, v in attrs])


def _cert(subject, issuer, key, signer, *, ca=False, san=None, days=30):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(signer, hashes.SHA256())


@dataclass
class Identity:
    key: object
    cert: x509.Certificate
    chain: list

    def pem_key(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def pem_certs(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [self.cert] + self.chain)


class Pki:
    def __init__(self, d: Path):
        self.d = Path(d)
        self.d.mkdir(parents=True, exist_ok=True)
        self.ca = self._ca("coord-test-ca")
        self.rogue_ca = self._ca("rogue-ca")
        self.server = self.issue(_name((NameOID.COMMON_NAME, "localhost")), san=[
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        # A subject with what Java's RFC 2253 form escapes or hex-encodes.
        self.client = self.issue(_name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Ex, Inc"),
                                       (NameOID.ORGANIZATIONAL_UNIT_NAME, "a=b+c #1"),
                                       (NameOID.COMMON_NAME, "kafka-broker"),
                                       (NameOID.EMAIL_ADDRESS, "kafka@example.com")))
        self.other = self.issue(_name((NameOID.COMMON_NAME, "other-client")))
        self.admin = self.issue(_name((NameOID.COMMON_NAME, "admin")))
        self.rogue = self.issue(_name((NameOID.COMMON_NAME, "rogue")), ca=self.rogue_ca)

    def _ca(self, cn):
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name((NameOID.COMMON_NAME, cn))
        return Identity(key, _cert(name, name, key, key, ca=True), [])

    def issue(self, subject, san=None, ca=None) -> Identity:
        ca = ca or self.ca
        key = ec.generate_private_key(ec.SECP256R1())
        return Identity(key, _cert(subject, ca.cert.subject, key, ca.key, san=san), [ca.cert])

    # -- files --------------------------------------------------------------------------------
    def pem(self, who: str) -> tuple[Path, Path]:
        """(key file, certificate chain file) for Python clients."""
        k, c = self.d / f"{who}.key", self.d / f"{who}.crt"
        if not (k.exists() and c.exists()):   # written once: client processes load them concurrently
            ident = getattr(self, who)
            k.write_bytes(ident.pem_key())
            c.write_bytes(ident.pem_certs())
        return k, c

    def ca_pem(self) -> Path:
        p = self.d / "ca.crt"
        if not p.exists():
            p.write_bytes(self.ca.cert.public_bytes(serialization.Encoding.PEM))
        return p

    def key_store(self, who: str, kind: str) -> Path:
        ident = getattr(self, who)
        if kind == "PEM":
            # ZooKeeper's PemReader reads the key as encrypted PKCS#8 when the store has a password,
            # and only with a PBES1 scheme its JDK knows (not PBES2): openssl -v1 PBE-SHA1-3DES.
            plain = self.d / f"{who}-plain.key"
            plain.write_bytes(ident.pem_key())
            key = subprocess.run(["openssl", "pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES", "-in", str(plain),
                                  "-passout", f"pass:{PASSWORD}"], check=True, capture_output=True).stdout
            plain.unlink()
            p = self.d / f"{who}-ks.pem"
            p.write_bytes(key + ident.pem_certs())
            return p
        p12 = self.d / f"{who}-ks.p12"
        p12.write_bytes(pkcs12.serialize_key_and_certificates(
            who.encode(), ident.key, ident.cert, ident.chain,
            serialization.BestAvailableEncryption(PASSWORD.encode())))
        if kind == "PKCS12":
            return p12
        jks = self.d / f"{who}-ks.jks"
        jks.unlink(missing_ok=True)
        subprocess.run(["keytool", "-importkeystore", "-noprompt", "-srckeystore", str(p12), "-srcstoretype",
                        "PKCS12", "-srcstorepass", PASSWORD, "-destkeystore", str(jks), "-deststoretype", "JKS",
                        "-deststorepass", PASSWORD, "-destkeypass", PASSWORD],
                       check=True, capture_output=True)
        return jks

    def trust_store(self, kind: str) -> Path:
        if kind == "PEM":
            p = self.d / "trust.pem"
            p.write_bytes(self.ca_pem().read_bytes())
            return p
        ext = {"JKS": "jks", "PKCS12": "p12"}[kind]
        p = self.d / f"trust.{ext}"
        p.unlink(missing_ok=True)
        subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", str(self.ca_pem()),
                        "-keystore", str(p), "-storetype", kind, "-storepass", PASSWORD],
                       check=True, capture_output=True)
        return p


def ssl_keys(pki: Pki, kind: str = "JKS", client_auth: str | None = None) -> dict[str, str]:
    """The zoo.cfg ssl.* keys for a server whose stores are of `kind`."""
    cfg = {"ssl.keyStore.location": str(pki.key_store("server", kind)),
           "ssl.keyStore.password": PASSWORD,
           "ssl.trustStore.location": str(pki.trust_store(kind)),
           "ssl.trustStore.password": PASSWORD}
    if client_auth:
        cfg["ssl.clientAuth"] = client_auth
    return cfg
