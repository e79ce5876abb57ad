"""Key and trust stores in the formats ZooKeeper users have: PEM, PKCS12 (cryptography) and JKS
(pyjks), with ZooKeeper's rules: `*.passwordPath` wins over `*.password`, the type comes from
`*.type` or the file name (.pem .p12 .pfx .jks), the key password is the store's. A store that does
not load is a TlsConfigError naming the key and file, never a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class TlsConfigError(ValueError):
    pass


@dataclass
class Store:
    location: str | None = None
    password: str | None = None
    password_path: str | None = None
    type: str | None = None

    def secret(self, key: str) -> bytes | None:
        """passwordPath wins over password (X509Util); None when neither is set."""
        if self.password_path:
            try:
                return Path(self.password_path).read_text().rstrip("\r\n").encode()
            except OSError as e:
                raise TlsConfigError(f"{key}.passwordPath {self.password_path}: {e.strerror}") from None
        return self.password.encode() if self.password is not None else None

    def kind(self, key: str) -> str:
        """ssl.*.type, or ZooKeeper's KeyStoreFileType.fromFilename: .jks .pem .p12/.pfx."""
        t = (self.type or "").strip().upper()
        if not t:
            ext = Path(self.location or "").suffix.lower()
            t = {".jks": "JKS", ".pem": "PEM", ".p12": "PKCS12", ".pfx": "PKCS12",
                 ".bcfks": "BCFKS"}.get(ext, "")
            if not t:
                raise TlsConfigError(f"{key}.location {self.location}: cannot tell the store type from the "
                                     f"file name; set {key}.type to PEM, PKCS12 or JKS")
        if t not in ("PEM", "PKCS12", "JKS"):
            raise TlsConfigError(f"{key}.type {t}: coord reads PEM, PKCS12 and JKS stores")
        return t


# -- stores ------------------------------------------------------------------------------------------
def _pem_blocks(text: str, kinds: tuple[str, ...]) -> list[str]:
    out, cur = [], None
    for line in text.splitlines():
        if line.startswith("-----BEGIN ") and any(k in line for k in kinds):
            cur = [line]
        elif cur is not None:
            cur.append(line)
            if line.startswith("-----END "):
                out.append("\n".join(cur) + "\n")
                cur = None
    return out


def _read(store: Store, key: str) -> tuple[bytes, bytes | None, str]:
    """The store file's bytes, its password and its type (key names the zoo.cfg prefix for errors)."""
    try:
        data = Path(store.location).read_bytes()
    except OSError as e:
        raise TlsConfigError(f"{key}.location {store.location}: {e.strerror}") from None
    return data, store.secret(key), store.kind(key)


def load_key_store(store: Store, key: str = "ssl.keyStore"):
    """(private key, [certificate chain]) as cryptography objects."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    if not store.location:
        raise TlsConfigError(f"{key}.location is not set")
    data, pw, kind = _read(store, key)
    try:
        if kind == "PEM":
            text = data.decode("ascii", "replace")
            keys = _pem_blocks(text, ("PRIVATE KEY",))
            certs = [x509.load_pem_x509_certificate(b.encode()) for b in _pem_blocks(text, ("CERTIFICATE",))]
            if not keys or not certs:
                raise TlsConfigError(f"{key}.location {store.location}: a PEM key store needs a private key "
                                     "and its certificate")
            encrypted = "ENCRYPTED" in keys[0]
            pkey = serialization.load_pem_private_key(keys[0].encode(), password=pw if encrypted else None)
            return pkey, certs
        if kind == "PKCS12":
            pkey, cert, extra = pkcs12.load_key_and_certificates(data, pw)
            if pkey is None or cert is None:
                raise TlsConfigError(f"{key}.location {store.location}: no private key entry")
            return pkey, [cert] + list(extra)
        import jks
        ks = jks.KeyStore.loads(data, (pw or b"").decode())
        if not ks.private_keys:
            raise TlsConfigError(f"{key}.location {store.location}: no private key entry")
        entry = next(iter(ks.private_keys.values()))
        if not entry.is_decrypted():
            entry.decrypt((pw or b"").decode())   # Java requires the key password to be the store's
        pkey = serialization.load_der_private_key(entry.pkey_pkcs8, password=None)
        return pkey, [x509.load_der_x509_certificate(c[1]) for c in entry.cert_chain]
    except TlsConfigError:
        raise
    except Exception as e:  # noqa: BLE001  (wrong password, corrupt file: named, never a traceback)
        raise TlsConfigError(f"{key}.location {store.location}: cannot load the {kind} store: {e}") from None


def load_trust_store(store: Store, key: str = "ssl.trustStore") -> str:
    """The trusted certificates as one PEM string (SSLContext.load_verify_locations cadata)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
    data, pw, kind = _read(store, key)
    try:
        if kind == "PEM":
            certs = [x509.load_pem_x509_certificate(b.encode())
                     for b in _pem_blocks(data.decode("ascii", "replace"), ("CERTIFICATE",))]
        elif kind == "PKCS12":
            p12 = pkcs12.load_pkcs12(data, pw)
            certs = [c.certificate for c in p12.additional_certs]
            if p12.cert:
                certs.append(p12.cert.certificate)
        else:
            import jks
            ks = jks.KeyStore.loads(data, (pw or b"").decode(), try_decrypt_keys=False)
            certs = [x509.load_der_x509_certificate(c.cert) for c in ks.certs.values()]
            for e in ks.private_keys.values():
                certs += [x509.load_der_x509_certificate(c[1]) for c in e.cert_chain]
    except Exception as e:  # noqa: BLE001
        raise TlsConfigError(f"{key}.location {store.location}: cannot load the {kind} store: {e}") from None
    if not certs:
        raise TlsConfigError(f"{key}.location {store.location}: no certificates")
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)
