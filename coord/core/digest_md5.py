"""The server side of SASL DIGEST-MD5 (RFC 2831) as the JDK's DigestMD5Server runs it for ZooKeeper.

ZooKeeper creates it with protocol `zookeeper`, server name `zk-sasl-md5` and no properties, so the
realm is `zk-sasl-md5`, the digest-uri must be `zookeeper/zk-sasl-md5`, qop is `auth` only (no
security layer) and the challenge says `charset=utf-8,algorithm=md5-sess`. Two steps: the first
token (empty from every client) gets the challenge; the digest-response gets `rspauth=...` and the
exchange is complete. Any other input raises SaslFailure (ZooKeeper's SaslException: AUTHFAILED
and the connection closes) or JvmFault (an unchecked exception in the JDK code: the connection
closes with no reply).
"""
from __future__ import annotations

import hmac
import re

try:   # the interpreter's own MD5: on PyPy 2.5x cheaper than hashlib's OpenSSL binding, same digest
    from _md5 import md5
except ImportError:   # an interpreter without it (a FIPS build): OpenSSL's
    from hashlib import md5

REALM = "zk-sasl-md5"
DIGEST_URI = "zookeeper/zk-sasl-md5"
MAX_RESPONSE_LENGTH = 4096
NONCE_COUNT = "00000001"
NONCE_COUNT_B = NONCE_COUNT.encode()

# DigestMD5Server.DIRECTIVE_KEY: the directives a digest-response may carry (others are ignored).
_KEYS = ("username", "realm", "qop", "cipher", "maxbuf", "charset", "algorithm", "nonce", "nc",
         "cnonce", "digest-uri", "response", "authzid")
_LWS = b"\r\n \t"


class SaslFailure(Exception):
    """javax.security.sasl.SaslException: ZooKeeper answers AUTHFAILED and closes."""


class JvmFault(Exception):
    """A RuntimeException out of the JDK mechanism (NumberFormatException...): ZooKeeper's worker
    thread logs it and closes the connection without a reply."""


def _java_parse_int(s: str, radix: int) -> int:
    """Integer.parseInt: optional sign, digits of the radix, 32-bit range; else NumberFormatException."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or any(c not in "0123456789abcdef"[:radix] for c in body.lower()):
        raise JvmFault(f"NumberFormatException: For input string: {s!r}")
    v = int(s, radix)
    if not -(1 << 31) <= v < (1 << 31):
        raise JvmFault(f"NumberFormatException: For input string: {s!r}")
    return v


# One directive as every client writes it: a plain key, '=', a quoted value with no backslash or a
# bare one with no quote, backslash or whitespace, then ',' or the end. A response made only of these
# (nothing between them) parses the same in one regex pass; anything else takes the byte-wise parser.
_PLAIN = re.compile(rb'([A-Za-z0-9_-]+)=(?:"([^"\\]*)"|([^",\\\r\n \t]+))(,|\Z)')


def parse_directives(buf: bytes) -> dict[str, bytes]:
    """DigestMD5Base.parseDirectives for a digest-response: key=value pairs, quoted (with backslash
    escapes) or bare, keys case-insensitive, a repeated known key is an error."""
    return _parse_plain(buf) or _parse_directives(buf)


def _parse_plain(buf: bytes) -> dict[str, bytes] | None:
    """The common case of parse_directives, or None: not in the plain form (or a repeated key)."""
    out: dict[str, bytes] = {}
    pos = 0
    sep = b""
    for m in _PLAIN.finditer(buf):
        if m.start() != pos:
            return None
        k = m.group(1).decode("ascii").lower()
        if k in _KEYS:
            if k in out:
                return None
            v = m.group(2)
            out[k] = v if v is not None else m.group(3)
        pos = m.end()
        sep = m.group(4)
    if pos != len(buf) or sep or not out:
        return None
    return out


def _parse_directives(buf: bytes) -> dict[str, bytes]:
    """parse_directives byte by byte: whitespace, escapes, and the errors the JDK raises."""
    out: dict[str, bytes] = {}
    key = bytearray()
    value = bytearray()
    getting_key, quoted, expect_sep = True, False, False
    n = len(buf)

    def skip(i: int) -> int:
        while i < n and buf[i] in _LWS:
            i += 1
        return i

    def extract() -> None:
        k = bytes(key).decode("utf-8", "replace").lower()
        if k in _KEYS:
            if k in out:
                raise SaslFailure(f"DIGEST-MD5: peer sent more than one {k} directive")
            out[k] = bytes(value)

    i = skip(0)
    while i < n:
        b = buf[i]
        if getting_key:
            if b == 0x2C:  # ','
                if key:
                    raise SaslFailure("Directive key contains a ','")
                i = skip(i + 1)
            elif b == 0x3D:  # '='
                if not key:
                    raise SaslFailure("Empty directive key")
                getting_key = False
                i = skip(i + 1)
                if i >= n:
                    raise SaslFailure(f"Valueless directive found: {bytes(key)!r}")
                if buf[i] == 0x22:
                    quoted = True
                    i += 1
            elif b in _LWS:
                i = skip(i + 1)
                if i >= n or buf[i] != 0x3D:
                    raise SaslFailure(f"'=' expected after key: {bytes(key)!r}")
            else:
                key.append(b)
                i += 1
        elif quoted:
            if b == 0x5C:  # backslash
                i += 1
                if i >= n:
                    raise SaslFailure("Unmatched quote found for directive")
                value.append(buf[i])
                i += 1
            elif b == 0x22:
                i += 1
                quoted = False
                expect_sep = True
            else:
                value.append(b)
                i += 1
        elif b in _LWS or b == 0x2C:
            extract()
            key.clear()
            value.clear()
            getting_key, quoted, expect_sep = True, False, False
            i = skip(i + 1)
        elif expect_sep:
            raise SaslFailure("Expecting comma or linear whitespace after quoted string")
        else:
            value.append(b)
            i += 1
    if quoted:
        raise SaslFailure("Unmatched quote found for directive")
    if key:
        extract()
    return out


def _latin1_or_utf8(s: str) -> bytes:
    """DigestMD5Base.stringToByte_8859_1 with useUTF8: ISO-8859-1 unless a char is above U+00FF."""
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8")


def _hex(b: bytes) -> bytes:
    return b.hex().encode()


def response_value(method: str, digest_uri: bytes, user: str, realm: str, password: str, nonce: bytes,
                   cnonce: bytes, authzid: bytes | None, qop: bytes = b"auth") -> bytes:
    """DigestMD5Base.generateResponseValue (md5-sess, nc 1) as 32 lowercase hex bytes."""
    return _kd(_h_a1(user_key(user, realm, password), nonce, cnonce, authzid), nonce, cnonce, qop,
               _h_a2(method, digest_uri))


# H(user:realm:password) per user and H(A2) per method: the same for every exchange of a server.
# Only users the JAAS database knows (and the one digest-uri ZooKeeper accepts) are cached.
_USER_KEYS: dict[tuple[str, str, str], bytes] = {}
_H_A2: dict[tuple[str, bytes], bytes] = {}
_CACHE_MAX = 4096


def user_key(user: str, realm: str, password: str) -> bytes:
    """H({ username-value, ":", realm-value, ":", passwd }), the 16 raw bytes A1 starts with."""
    k = (user, realm, password)
    key = _USER_KEYS.get(k)
    if key is None:
        key = md5(_latin1_or_utf8(user) + b":" + _latin1_or_utf8(realm) + b":"
                  + _latin1_or_utf8(password)).digest()
        if len(_USER_KEYS) >= _CACHE_MAX:
            _USER_KEYS.clear()
        _USER_KEYS[k] = key
    return key


def _h_a2(method: str, digest_uri: bytes) -> bytes:
    k = (method, digest_uri)
    h = _H_A2.get(k)
    if h is None:
        h = _hex(md5(method.encode() + b":" + digest_uri).digest())
        if len(_H_A2) < _CACHE_MAX:
            _H_A2[k] = h
    return h


def _h_a1(key: bytes, nonce: bytes, cnonce: bytes, authzid: bytes | None) -> bytes:
    a1 = key + b":" + nonce + b":" + cnonce
    if authzid is not None:
        a1 += b":" + authzid
    return _hex(md5(a1).digest())


def _kd(h_a1: bytes, nonce: bytes, cnonce: bytes, qop: bytes, h_a2: bytes) -> bytes:
    return _hex(md5(h_a1 + b":" + nonce + b":" + NONCE_COUNT_B + b":" + cnonce + b":" + qop + b":" + h_a2).digest())


def _quote(value: bytes) -> bytes:
    """writeQuotedStringValue: backslash before '"', '\\' and control characters other than CR/LF/HT."""
    out = bytearray()
    for b in value:
        if b in (0x22, 0x5C) or (b < 0x20 and b not in (0x0D, 0x0A, 0x09)) or b == 0x7F:
            out.append(0x5C)
        out.append(b)
    return bytes(out)


class DigestMD5Server:
    """One connection's DIGEST-MD5 exchange. `password_of(user)` is the JAAS user database (None:
    unknown user); `nonce` is 40 base64 characters from 30 random bytes, given by the caller (the
    core has no randomness of its own)."""

    def __init__(self, password_of, nonce: bytes):
        self.password_of = password_of
        self.nonce = nonce
        self.step = 1
        self.complete = False
        self.username: str | None = None
        self.authzid: str | None = None   # the client's authzid, or its username when it sent none

    def challenge(self) -> bytes:
        return (b'realm="' + _quote(REALM.encode()) + b'",nonce="' + _quote(self.nonce)
                + b'",charset=utf-8,algorithm=md5-sess')

    def evaluate(self, response: bytes) -> bytes:
        if len(response) > MAX_RESPONSE_LENGTH:
            raise SaslFailure(f"DIGEST-MD5: Invalid digest response length. Got:  {len(response)} "
                              f"Expected < {MAX_RESPONSE_LENGTH}")
        if self.step == 1:
            # JDK 17 (what ZooKeeper 3.8 runs on Debian 12) ignores an initial response; later
            # JDKs refuse it.
            self.step = 3
            return self.challenge()
        if self.step == 3:
            try:
                rspauth = self._validate(parse_directives(response))
            finally:
                self.step = 0
            self.complete = True
            return rspauth
        raise SaslFailure("DIGEST-MD5: Server at illegal state")

    def _validate(self, d: dict[str, bytes]) -> bytes:
        enc = lambda b: b.decode("utf-8", "replace")  # noqa: E731  (new String(bytes, "UTF8"))
        if "charset" in d and enc(d["charset"]) != "utf-8":
            raise SaslFailure("DIGEST-MD5: digest response format violation. Incompatible charset value")
        if "maxbuf" in d:
            _java_parse_int(enc(d["maxbuf"]), 10)
        if "username" not in d:
            raise SaslFailure("DIGEST-MD5: digest response format violation. Missing username.")
        username = enc(d["username"])
        realm = enc(d.get("realm", b""))
        if realm != REALM:
            raise SaslFailure(f"DIGEST-MD5: digest response format violation. Nonexistent realm: {realm}")
        if "nonce" not in d:
            raise SaslFailure("DIGEST-MD5: digest response format violation. Missing nonce.")
        if d["nonce"] != self.nonce:
            raise SaslFailure("DIGEST-MD5: digest response format violation. Mismatched nonce.")
        if "cnonce" not in d:
            raise SaslFailure("DIGEST-MD5: digest response format violation. Missing cnonce.")
        # JDK 17 does not check the nonce count (later JDKs require 1); the digest always uses 1.
        qop = enc(d.get("qop", b"auth"))
        if qop in ("auth-int", "auth-conf"):
            raise SaslFailure(f"DIGEST-MD5: server does not support  qop: {qop}")
        if qop != "auth":
            raise SaslFailure(f"DIGEST-MD5: digest response format violation. Invalid QOP: {qop}")
        uri = d.get("digest-uri")
        if uri is None or enc(uri).lower() != DIGEST_URI.lower():
            raise SaslFailure("DIGEST-MD5: digest response format violation. Mismatched URI")
        if "response" not in d:
            raise SaslFailure("DIGEST-MD5: digest response format  violation. Missing response.")
        authzid = d.get("authzid")
        password = self.password_of(username)
        if password is None:
            raise SaslFailure(f"DIGEST-MD5: cannot acquire password for {username} in realm : {realm}")
        # A1 (and so H(A1)) is the same for the client's response and for rspauth: hashed once.
        h_a1 = _h_a1(user_key(username, realm, password), self.nonce, d["cnonce"], authzid)
        expected = _kd(h_a1, self.nonce, d["cnonce"], b"auth", _h_a2("AUTHENTICATE", uri))
        if not hmac.compare_digest(d["response"], expected):
            raise SaslFailure("DIGEST-MD5: digest response format violation. Mismatched response.")
        self.username = username
        self.authzid = enc(authzid) if authzid is not None else username
        return b"rspauth=" + _kd(h_a1, self.nonce, d["cnonce"], b"auth", _h_a2("", uri))
