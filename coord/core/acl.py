"""ACLs and authentication schemes: world, auth, digest, ip, super (superDigest).

An ACL is held in the tree as a tuple of (perms, scheme, id) triples, interned so equal lists share
one object (ZooKeeper's ReferenceCountedACLCache, without the counting). A session's identities are a
tuple of (scheme, id) pairs. check() answers ZooKeeper's checkACL: any entry granting any of the asked
bits to any identity of the caller; the super identity passes everything.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress

from coord.jute.protocol import Perms

AclTuple = tuple  # tuple[tuple[int, str, str], ...]

OPEN_ACL_UNSAFE: AclTuple = ((int(Perms.ALL), "world", "anyone"),)
READ_ACL_UNSAFE: AclTuple = ((int(Perms.READ), "world", "anyone"),)
SUPER = ("super", "")

_intern: dict[AclTuple, AclTuple] = {}


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


def _ip_valid(spec: str) -> bool:
    try:
        if "/" in spec:
            ipaddress.ip_network(spec, strict=False)
        else:
            ipaddress.ip_address(spec)
        return True
    except ValueError:
        return False


def _ip_matches(spec: str, addr: str) -> bool:
    try:
        if "/" in spec:
            return ipaddress.ip_address(addr) in ipaddress.ip_network(spec, strict=False)
        return ipaddress.ip_address(addr) == ipaddress.ip_address(spec)
    except ValueError:
        return False


def id_valid(scheme: str, ident: str) -> bool:
    """ServerAuthenticationProvider.isValid for the schemes we serve."""
    if scheme == "digest":
        return ident is not None and ident.count(":") == 1
    if scheme == "ip":
        return ident is not None and _ip_valid(ident)
    if scheme == "world":
        return ident == "anyone"
    if scheme == "super":
        return True
    return False


AUTHENTICATED_SCHEMES = frozenset(("digest", "super", "sasl"))


class InvalidACL(Exception):
    pass


def fixup(acl_records, auth_ids: tuple) -> AclTuple:
    """PrepRequestProcessor.fixupACL: validate, dedupe, expand 'auth' to the caller's identities."""
    if not acl_records:
        raise InvalidACL()
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
            for s, i in auth_ids:
                if s in AUTHENTICATED_SCHEMES:
                    found = True
                    out.append((a.perms, s, i))
            if not found:
                raise InvalidACL()
        else:
            if not id_valid(scheme, ident):
                raise InvalidACL()
            out.append(key)
    return intern(tuple(dict.fromkeys(out)))


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
                elif i == ident:
                    return True
    return False


def redact_digests(acl: AclTuple) -> AclTuple:
    """getACL without ADMIN: digest ids lose their hash (user:x), as ZooKeeper 3.8."""
    return tuple((p, s, (i.split(":", 1)[0] + ":x") if s == "digest" else i) for p, s, i in acl)
