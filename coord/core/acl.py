"""ACLs and authentication schemes: world, auth, digest, ip, super (superDigest), sasl, x509.

An ACL is held in the tree as a tuple of (perms, scheme, id) triples, interned so equal lists share
one object (ZooKeeper's ReferenceCountedACLCache, without the counting). A session's identities are a
tuple of (scheme, id) pairs. check() answers ZooKeeper's checkACL: any entry granting any of the asked
bits to any identity of the caller; the super identity passes everything.
"""
from __future__ import annotations

import base64
import hashlib
import re

from coord.core.javaorder import concurrent_set_order
from coord.core.sasl import kerberos_valid
from coord.core.x509name import dn_valid
from coord.jute.protocol import Perms

AclTuple = tuple  # tuple[tuple[int, str, str], ...]

OPEN_ACL_UNSAFE: AclTuple = ((int(Perms.ALL), "world", "anyone"),)
READ_ACL_UNSAFE: AclTuple = ((int(Perms.READ), "world", "anyone"),)
SUPER = ("super", "")

# The two constant ACLs are interned first, so a node with an open ACL holds OPEN_ACL_UNSAFE itself
# and the hot paths can skip check() with an identity test.
_intern: dict[AclTuple, AclTuple] = {OPEN_ACL_UNSAFE: OPEN_ACL_UNSAFE, READ_ACL_UNSAFE: READ_ACL_UNSAFE}


def intern(acl: AclTuple) -> AclTuple:
    got = _intern.get(acl)
    if got is None:
        got = _intern[acl] = acl
    return got


def digest_id(user_password: str) -> str:
    """'user:password' -> 'user:base64(sha1(user:password))' as DigestAuthenticationProvider."""
    user = user_password.split(":", 1)[0]
    h = base64.b64encode(hashlib.sha1(user_password.encode()).digest()).decode()
    return f"{user}:{h}"


_JAVA_INT = re.compile(r"[+-]?[0-9]+\Z")


def _java_int(s: str) -> int | None:
    """Integer.parseInt, or None where it would throw."""
    return int(s) if _JAVA_INT.match(s) else None


def _v4_bytes(addr: str) -> list[int] | None:
    """IPAuthenticationProvider.v4addr2Bytes: exactly four dotted 0..255 fields (IPv4 only, as 3.8)."""
    parts = addr.split(".")
    if len(parts) != 4:
        return None
    out = []
    for p in parts:
        v = _java_int(p)
        if v is None or not 0 <= v <= 255:
            return None
        out.append(v)
    return out


def _ip_spec(spec: str) -> tuple[list[int], int] | None:
    """An ip ACL id 'a.b.c.d[/bits]' as (address bytes, mask bits), or None if ZooKeeper rejects it."""
    addr, sep, bits_s = spec.partition("/")
    b = _v4_bytes(addr)
    if b is None:
        return None
    bits = 32
    if sep:
        bits = _java_int(bits_s)
        if bits is None or not 0 <= bits <= 32:
            return None
    return b, bits


def _masked(b: list[int], bits: int) -> int:
    v = (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]
    return v & ((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF)


def _ip_valid(spec: str) -> bool:
    return _ip_spec(spec) is not None


def _ip_matches(spec: str, addr: str) -> bool:
    acl = _ip_spec(spec)
    remote = _v4_bytes(addr)
    if acl is None or remote is None:
        return False
    b, bits = acl
    return _masked(b, bits) == _masked(remote, bits)


def _java_split_colon(s: str) -> list[str]:
    """String.split(":"): trailing empty fields are dropped."""
    parts = s.split(":")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def id_valid(scheme: str, ident: str) -> bool:
    """ServerAuthenticationProvider.isValid for the schemes we serve."""
    if scheme == "digest":
        return ident is not None and len(_java_split_colon(ident)) == 2
    if scheme == "ip":
        return ident is not None and _ip_valid(ident)
    if scheme == "world":
        return ident == "anyone"
    if scheme == "super":
        return True
    if scheme == "sasl":   # SASLAuthenticationProvider: new KerberosName(id) must not throw
        return ident is not None and kerberos_valid(ident)
    if scheme == "x509":   # X509AuthenticationProvider: new X500Principal(id) must parse
        return ident is not None and dn_valid(ident)
    return False


# Schemes whose provider says isAuthenticated(); "super" has no provider in ZooKeeper (it is skipped).
AUTHENTICATED_SCHEMES = frozenset(("digest", "sasl", "x509"))


def auth_order(auth_ids: tuple) -> list:
    """The caller's identities in the order ZooKeeper iterates them: a connection keeps them in a
    ConcurrentHashMap-backed set, so whoAmI and the expansion of 'auth' ACLs follow the hash buckets
    of Id.hashCode (insertion order within a bucket), not the order of authentication."""
    return concurrent_set_order(auth_ids)


def user_name(scheme: str, ident: str) -> str:
    """AuthUtil.getUser as whoAmI shows it: the provider's user name (digest: the part before ':');
    '' for super, which has no provider (an x509 super user's id is its DN, shown as '')."""
    if scheme == "digest":
        return ident.split(":", 1)[0]
    return "" if scheme == "super" else ident


class InvalidACL(Exception):
    pass


_WORLD: dict[int, AclTuple] = {}


def fixup(acl_records, auth_ids: tuple) -> AclTuple:
    """PrepRequestProcessor.fixupACL: drop duplicate entries, validate, expand 'auth' to the caller's
    authenticated identities (in ZooKeeper's iteration order). Like ZooKeeper, the expanded list is
    not de-duplicated again."""
    if not acl_records:
        raise InvalidACL()
    if len(acl_records) == 1:  # the common case, world:anyone alone: the same result, cached
        a = acl_records[0]
        if a is not None and a.id is not None and a.id.scheme == "world" and a.id.id == "anyone":
            got = _WORLD.get(a.perms)
            if got is None:
                got = intern(((a.perms, "world", "anyone"),))
                if len(_WORLD) < 64:
                    _WORLD[a.perms] = got
            return got
    out: list[tuple[int, str, str]] = []
    seen = set()
    for a in acl_records:
        if a is None or a.id is None or a.id.scheme is None:
            raise InvalidACL()
        key = (a.perms, a.id.scheme, a.id.id)
        if key in seen:
            continue
        seen.add(key)
        scheme, ident = a.id.scheme, a.id.id
        if scheme == "world" and ident == "anyone":
            out.append(key)
        elif scheme == "auth":
            found = False
            for s, i in auth_order(auth_ids):
                if s in AUTHENTICATED_SCHEMES:
                    found = True
                    out.append((a.perms, s, i))
            if not found:
                raise InvalidACL()
        else:
            if not id_valid(scheme, ident):
                raise InvalidACL()
            out.append(key)
    return intern(tuple(out))


def check(acl: AclTuple, perm: int, auth_ids: tuple) -> bool:
    """True if the caller (auth_ids) holds any bit of perm on a node with this acl."""
    if not acl:
        return True
    for s, _ in auth_ids:
        if s == "super":
            return True
    for perms, scheme, ident in acl:
        if not perms & perm:
            continue
        if scheme == "world" and ident == "anyone":
            return True
        for s, i in auth_ids:
            if s == scheme:
                if scheme == "ip":
                    if _ip_matches(ident, i):
                        return True
                elif i == ident or (scheme == "sasl" and i == "super"):
                    return True   # SASLAuthenticationProvider.matches: sasl:super matches every sasl id
    return False


def redact_digests(acl: AclTuple) -> AclTuple:
    """getACL without ADMIN: digest ids lose their hash (user:x), as ZooKeeper 3.8."""
    return tuple((p, s, (i.split(":", 1)[0] + ":x") if s == "digest" else i) for p, s, i in acl)
