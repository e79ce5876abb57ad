"""Dynamic reconfiguration's request path (ZooKeeper 3.5+'s PrepRequestProcessor `case reconfig`).

The configuration lives in /zookeeper/config as QuorumMaj.toString() writes it:

    server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181
    ...
    version=100000000

A reconfig request is checked in ZooKeeper's order (disabled, standalone, in progress, stale
`fromConfig`, malformed specs, too few voters, no synced quorum in the new config, WRITE on
/zookeeper/config) and becomes a reconfig txn: SetDataTxn(/zookeeper/config, <new config with
version=<hex zxid>>, -1). Pure: no sockets, no files.
"""
from __future__ import annotations

from coord.core.quorumserver import QuorumServer, parse_server_spec
from coord.jute.protocol import Err


class ReconfigError(Exception):
    def __init__(self, err: Err, why: str = ""):
        super().__init__(why or err.name)
        self.err = err


def render(members: dict[int, QuorumServer], version: int) -> bytes:
    lines = [f"server.{sid}={members[sid].spec()}" for sid in sorted(members)]
    return ("\n".join(lines + [f"version={version:x}"])).encode()


def parse(data: bytes | None) -> tuple[dict[int, QuorumServer], int]:
    members: dict[int, QuorumServer] = {}
    version = 0
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or "=" not in line:
            continue
        k, _, v = line.partition("=")
        k = k.strip()
        if k == "version":
            version = int(v.strip(), 16)
        elif k.startswith("server."):
            sid = int(k[len("server."):])
            members[sid] = parse_server_spec(sid, v.strip())
    return members, version


def version_of(data: bytes | None) -> int:
    """The version of /zookeeper/config data, -1 when it has none or does not parse."""
    try:
        return parse(data)[1] if data else -1
    except ValueError:
        return -1


def _spec(sid: int, spec: str, need_client: bool) -> QuorumServer:
    try:
        qs = parse_server_spec(sid, spec)
    except ValueError as e:
        raise ReconfigError(Err.BADARGUMENTS, str(e)) from None
    if need_client and qs.client_port is None:
        raise ReconfigError(Err.BADARGUMENTS,
                            "Wrong format of server string - each server should have 3 ports specified")
    return qs


def _special(host: str | None) -> bool:
    """QuorumServer.excludedSpecialAddresses: wildcard and loopback addresses are never duplicates."""
    if host is None:
        return True
    h = host.strip("[]").lower()
    return h in ("0.0.0.0", "::", "::1", "localhost", "0:0:0:0:0:0:0:0", "0:0:0:0:0:0:0:1") \
        or h.startswith("127.")


def _addrs(qs: QuorumServer) -> set[tuple[str, int]]:
    out = {(qs.host, qs.quorum_port), (qs.host, qs.election_port)}
    if qs.client_port is not None:
        out.add((qs.client_host or "0.0.0.0", qs.client_port))
    return {a for a in out if not _special(a[0])}


def _check_joiner(qs: QuorumServer, others: dict[int, QuorumServer]) -> None:
    """QuorumServer.checkAddressDuplicate against every other server."""
    mine = _addrs(qs)
    for sid, o in others.items():
        if sid != qs.sid and mine & _addrs(o):
            raise ReconfigError(Err.BADARGUMENTS, f"server.{qs.sid} conflicts with server.{sid}")


def _sid(text: str) -> int:
    """Long.parseLong outside ZooKeeper's ConfigException handler: a bad id is MARSHALLINGERROR."""
    try:
        return int(text.strip())
    except ValueError:
        raise ReconfigError(Err.MARSHALLINGERROR, f"bad server id {text!r}") from None


def next_members(current: dict[int, QuorumServer], joining: str | None, leaving: str | None,
                 new_members: str | None) -> dict[int, QuorumServer]:
    """The membership a request asks for (BADARGUMENTS when a spec is malformed)."""
    if new_members is not None:
        out: dict[int, QuorumServer] = {}
        for line in new_members.replace(",", "\n").splitlines():
            line = line.strip()
            if not line or line[0] in "#!":
                continue
            k, sep, v = line.partition("=")
            k = k.strip()
            if not sep:
                raise ReconfigError(Err.BADARGUMENTS, f"bad line {line!r}")
            if k == "version":
                continue
            if not k.startswith("server."):
                raise ReconfigError(Err.BADARGUMENTS, f"unexpected key {k!r}")
            sid = _sid(k[len("server."):])
            out[sid] = _spec(sid, v.strip(), False)
        return out
    out = dict(current)
    if leaving is not None:
        for x in leaving.split(","):
            x = x.strip()
            if not x:
                continue
            out.pop(_sid(x), None)
    if joining is not None:
        for j in joining.split(","):
            j = j.strip()
            if not j:
                continue
            parts = [p for p in j.split("=") if p]
            if len(parts) != 2:
                raise ReconfigError(Err.BADARGUMENTS, "Wrong format of server string")
            sid = _sid(parts[0][parts[0].rfind(".") + 1:])
            qs = _spec(sid, parts[1], True)
            _check_joiner(qs, out)
            out.pop(sid, None)
            out[sid] = qs
    return out


def voters(members: dict[int, QuorumServer]) -> set[int]:
    return {s for s, q in members.items() if q.role == "participant"}
