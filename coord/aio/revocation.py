"""`ssl.crl` / `ssl.ocsp` (and `ssl.quorum.*`): a peer certificate's revocation status, as ZooKeeper's JVM finds it.

ZooKeeper's X509Util turns `ssl.crl` into Java's PKIX revocation checking with
`com.sun.security.enableCRLDP`: the CRL is fetched from the URL in the certificate's CRL
distribution points, and a certificate whose status cannot be found (no distribution point, the CRL
unreachable or not signed by the issuer) is refused like a revoked one. Java's URICertStore keeps a
fetched CRL for 30 s. `ssl.ocsp=true` (Java's `ocsp.enable`, which X509Util sets beside the CRL
switches) asks the OCSP responder named in the certificate's Authority Information Access first;
its "good" or "revoked" decides, anything else falls back to the CRLs. Here the check runs after OpenSSL verified the chain, on the peer's own
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


def _ocsp_urls(cert) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)
            and d.access_location.value.startswith(("http://", "https://"))]


def _ask_ocsp(url: str, cert, issuer):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    http = urllib.request.Request(url, data=req.public_bytes(serialization.Encoding.DER), method="POST",
                                  headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(http, timeout=FETCH_TIMEOUT_S) as r:   # noqa: S310 (the cert names it)
        return ocsp.load_der_ocsp_response(r.read())


def _signed_by(resp, issuer) -> bool:
    """The response is signed by the issuer, or by a responder certificate the issuer signed for it."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    signers = [issuer]
    for c in resp.certificates:
        try:
            eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku and c.issuer == issuer.subject:
            try:
                c.verify_directly_issued_by(issuer)
            except Exception:  # noqa: BLE001 (not signed by the issuer)
                continue
            signers.append(c)
    for s in signers:
        try:
            _verify(s.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
            return True
        except Exception:  # noqa: BLE001 (InvalidSignature, or a key type that does not fit)
            continue
    return False


def _verify(key, signature: bytes, data: bytes, algorithm) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    else:
        key.verify(signature, data)


async def _ocsp_verdict(cert, issuers) -> str | None:
    """ssl.ocsp=true (Java's ocsp.enable, preferred over CRLs): "good", a refusal, or None when OCSP
    cannot tell (no responder URL, no answer, status unknown): then the CRLs decide, as in Java."""
    from cryptography.x509 import ocsp
    urls = _ocsp_urls(cert)
    if not urls or not issuers:
        return None
    loop = asyncio.get_running_loop()
    for url in urls:
        try:
            resp = await loop.run_in_executor(None, _ask_ocsp, url, cert, issuers[0])
        except Exception:  # noqa: BLE001 (no answer: fall back)
            continue
        if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL or resp.serial_number != cert.serial_number:
            continue
        if not any(_signed_by(resp, i) for i in issuers):
            continue
        if resp.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            return f"certificate revoked (serial {cert.serial_number:x}, OCSP {url})"
        if resp.certificate_status == ocsp.OCSPCertStatus.GOOD:
            return "good"
    return None


async def refusal(der: bytes, settings) -> str | None:
    """Why the certificate must be refused (revoked, or its status unknown), or None."""
    from cryptography import x509
    cert = x509.load_der_x509_certificate(der)
    issuers = [c for c in x509.load_pem_x509_certificates(
        load_trust_store(settings.trust_store, settings.prefix + ".trustStore").encode())
        if c.subject == cert.issuer]
    if settings.ocsp:
        verdict = await _ocsp_verdict(cert, issuers)
        if verdict is not None:
            return None if verdict == "good" else verdict
    urls = _distribution_points(cert)
    if not urls:
        return "revocation status unknown: the certificate names no CRL distribution point" + (
            " and no OCSP responder answered" if settings.ocsp else "")
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
