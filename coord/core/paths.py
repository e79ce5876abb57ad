"""Znode path rules, as ZooKeeper's PathUtils: absolute, no empty/relative segments, no control chars."""
from __future__ import annotations

import re

# PathUtils rejects \u0000-\u001f, \u007f-\u009f, \ud800-\uf8ff, \ufff0-\uffff.
_BAD_CHARS = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]")

ROOT = "/"
PROC = "/zookeeper"
QUOTA = "/zookeeper/quota"
CONFIG = "/zookeeper/config"
SPECIAL = frozenset((ROOT, PROC, QUOTA, CONFIG))


def invalid_reason(path) -> str | None:
    """Why path is not a valid znode path, or None if it is."""
    if not path:
        return "path is empty"
    if not isinstance(path, str):
        return "path is not a string"
    if path[0] != "/":
        return "path must start with /"
    if len(path) == 1:
        return None
    if path[-1] == "/":
        return "path must not end with /"
    if "//" in path or "/." in path:  # only then can a segment be empty, "." or ".."
        for seg in path[1:].split("/"):
            if seg == "":
                return "empty node name"
            if seg == "." or seg == "..":
                return "relative paths not allowed"
    # printable ASCII (the usual path) has none of the bad characters: skip the regex
    if not (path.isascii() and path.isprintable()) and _BAD_CHARS.search(path):
        return "invalid character"
    return None


def parent_of(path: str) -> str:
    i = path.rfind("/")
    return "/" if i == 0 else path[:i]


def basename(path: str) -> str:
    return path[path.rfind("/") + 1:]


def join(parent: str, child: str) -> str:
    return "/" + child if parent == "/" else parent + "/" + child


def ancestors(path: str):
    """path's proper ancestors, nearest first, ending at '/'."""
    while path != "/":
        path = parent_of(path)
        yield path
