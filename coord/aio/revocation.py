"""`ssl.crl=true` / `ssl.quorum.crl=true`: a peer certificate's revocation status, as ZooKeeper's JVM finds it.

ZooKeeper's X509Util turns `ssl.crl` into Java's PKIX revocation checking with
`com.sun.security.enableCRLDP`: the CRL is fetched from the URL in the certificate's CRL
distribution points, and a certificate whose status cannot be found (no distribution point, the CRL
unreachable or not signed by the issuer) is refused like a revoked one. Java's URICertStore keeps a
fetched CRL for 30 s. Here the check runs after OpenSSL verified the chain, on the peer's own
certificate (Python's ssl does not give the chain; Java also checks intermediates); the fetch runs in
a thread so the event loop never waits on it.
"""
from __future__ import annotations

import asyncio
import time
import urllib.request

from coord.aio.keystores import load_trust_store

CACHE_S = 30.0            # Java's URICertStore re-reads a CRL URL after 30 s
FETCH_TIMEOUT_S = 15.0    # com.sun.security.crl.timeout's default
_cache: dict[str, tuple[float, object]] = {}    # url -> (fetched at, CRL or the error text)


def _fetch(url: str):
    from cryptography import x509
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as r:   # noqa: S310 (the cert names it)
        data = r.read()
    try:
        return x509.load_der_x509_crl(data)
    except ValueError:
        return x509.load_pem_x509_crl(data)


def _distribution_points(cert) -> list[str]:
    from cryptography import x509
    try:
        ext = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [n.value for dp in ext for n in (dp.full_name or ())
            if isinstance(n, x509.UniformResourceIdentifier) and n.value.startswith(("http://", "https://"))]


async def _crl(url: str):
    now = time.monotonic()
    hit = _cache.get(url)
    if hit is not None and now - hit[0] < CACHE_S:
        return hit[1]
    try:
        crl = await asyncio.get_running_loop().run_in_executor(None, _fetch, url)
    except Exception as e:  # noqa: BLE001 (any failure leaves the status unknown)
        crl = f"cannot fetch the CRL from {url}: {e}"
    _cache[url] = (now, crl)
    return crl


async def refusal(der: bytes, settings) -> str | None:
    """Why the certificate must be refused (revoked, or its status unknown), or None."""
    from cryptography import x509
    cert = x509.load_der_x509_certificate(der)
    urls = _distribution_points(cert)
    if not urls:
        return "revocation status unknown: the certificate names no CRL distribution point (ssl.crl=true)"
    issuers = [c for c in x509.load_pem_x509_certificates(
        load_trust_store(settings.trust_store, settings.prefix + ".trustStore").encode())
        if c.subject == cert.issuer]
    why = "no CRL"
    for url in urls:
        crl = await _crl(url)
        if isinstance(crl, str):
            why = crl
            continue
        if crl.issuer != cert.issuer or not any(crl.is_signature_valid(i.public_key()) for i in issuers):
            why = f"the CRL from {url} is not signed by the certificate's issuer"
            continue
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is not None:
            return f"certificate revoked (serial {cert.serial_number:x}, CRL {url})"
        return None
    return f"revocation status unknown: {why}"
