"""x509 identities: Java's RFC 2253 distinguished-name string, the id ZooKeeper gives a client cert.

`X500Principal.getName()` (sun.security.x509.AVA.toRFC2253String): RDNs in reverse DER order joined
by ',' with no spaces; the AVAs of a multi-valued RDN joined by '+' in their DER order; keywords
only for CN C L ST O OU STREET DC UID, every other attribute as its dotted OID with the value as
'#' + hex of its DER encoding; string values with a backslash before , = + < > # ; " \\ anywhere,
leading and trailing spaces escaped one by one, NUL as \\00, other characters raw. Python's
rfc4514_string differs (it names emailAddress and does not escape '=' or an inner '#').

The input is the DER of the certificate's subject Name (the shell takes it from the certificate);
this module parses it itself, so the '#hex' form is the bytes exactly as the certificate has them.
"""
from __future__ import annotations

import re

_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}
# DER string tags Java prints as text: UTF8String, PrintableString, T61String, IA5String,
# GeneralString, BMPString (UniversalString is not among them: it gets the #hex form).
_STRING_TAGS = {0x0C: "utf-8", 0x13: "latin-1", 0x14: "latin-1", 0x16: "latin-1", 0x1B: "latin-1",
                0x1E: "utf-16-be"}
_SPECIAL = set(',=+<>#;"\\')


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in _SPECIAL:
            out.append("\\" + ch)
        elif ch == "\x00":
            out.append("\\00")
        else:
            out.append(ch)
    s = "".join(out)
    # Leading and trailing spaces (and CR) are escaped one by one.
    lead = len(s) - len(s.lstrip(" \r"))
    trail = len(s) - len(s.rstrip(" \r")) if s.strip(" \r") else 0
    if s and not s.strip(" \r"):
        return "".join("\\" + c for c in s)
    head = "".join("\\" + c for c in s[:lead])
    tail = "".join("\\" + c for c in s[len(s) - trail:]) if trail else ""
    return head + s[lead:len(s) - trail] + tail


class BadName(ValueError):
    pass


def _tlv(buf: bytes, i: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at i."""
    if i + 2 > len(buf):
        raise BadName("truncated DER")
    tag = buf[i]
    n = buf[i + 1]
    j = i + 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or j + k > len(buf):
            raise BadName("bad DER length")
        n = int.from_bytes(buf[j:j + k], "big")
        j += k
    if j + n > len(buf):
        raise BadName("truncated DER")
    return tag, j, j + n


def _oid(b: bytes) -> str:
    if not b:
        raise BadName("empty OID")
    parts, v = [], 0
    for x in b:
        v = (v << 7) | (x & 0x7F)
        if not x & 0x80:
            parts.append(v)
            v = 0
    first = parts[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(p) for p in head + parts[1:])


def rdns_from_der(name: bytes) -> list:
    """A DER Name (SEQUENCE OF SET OF SEQUENCE {OID, value}) -> [[(oid, tag, value, tlv), ...], ...]."""
    tag, p, end = _tlv(name, 0)
    if tag != 0x30:
        raise BadName("Name is not a SEQUENCE")
    rdns = []
    while p < end:
        tag, q, rend = _tlv(name, p)
        if tag != 0x31:
            raise BadName("RDN is not a SET")
        avas = []
        while q < rend:
            tag, a, aend = _tlv(name, q)
            if tag != 0x30:
                raise BadName("AVA is not a SEQUENCE")
            otag, o, oend = _tlv(name, a)
            if otag != 0x06:
                raise BadName("AVA without an OID")
            vtag, v, vend = _tlv(name, oend)
            avas.append((_oid(name[o:oend]), vtag, name[v:vend], name[oend:vend]))
            q = aend
        rdns.append(avas)
        p = rend
    return rdns


def java_rfc2253(rdns) -> str:
    """rdns: [[(oid, tag, value_bytes, der_tlv), ...], ...] in DER order -> X500Principal.getName()."""
    parts = []
    for rdn in reversed(rdns):
        avas = []
        for oid, tag, value, der in rdn:
            key = _KEYWORDS.get(oid)
            codec = _STRING_TAGS.get(tag)
            if key is None or codec is None:
                avas.append(f"{key or oid}=#{der.hex()}")
            else:
                avas.append(f"{key}={_escape(value.decode(codec, 'replace'))}")
        parts.append("+".join(avas))
    return ",".join(parts)


_JAVA_KEYWORDS = {"CN", "C", "L", "S", "ST", "O", "OU", "T", "IP", "STREET", "DC", "DNQUALIFIER", "DNQ",
                  "SURNAME", "GIVENNAME", "INITIALS", "GENERATION", "EMAIL", "EMAILADDRESS", "UID",
                  "SERIALNUMBER"}
_OID = re.compile(r"(?:OID\.)?[0-9]+(?:\.[0-9]+)+\Z", re.I)
_HEX = re.compile(r"#(?:[0-9A-Fa-f]{2})+\Z")


def _split(s: str, seps: str) -> list[str] | None:
    """Split on unescaped, unquoted separators; None on a dangling escape or open quote."""
    out, cur, i, quoted = [], [], 0, False
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s):
                return None
            cur.append(s[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c in seps and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    if quoted:
        return None
    out.append("".join(cur))
    return out


def dn_valid(dn: str) -> bool:
    """Roughly `new X500Principal(dn)` parses: empty, or RDNs of keyword-or-OID=value AVAs."""
    if dn.strip() == "":
        return True
    rdns = _split(dn, ",;")
    if rdns is None:
        return False
    for rdn in rdns:
        avas = _split(rdn, "+")
        if avas is None:
            return False
        for ava in avas:
            key, eq, value = ava.partition("=")
            key = key.strip()
            if not eq or not key:
                return False
            if key.upper() not in _JAVA_KEYWORDS and not _OID.match(key):
                return False
            v = value.strip()
            if v.startswith("#") and not _HEX.match(v):
                return False
    return True
