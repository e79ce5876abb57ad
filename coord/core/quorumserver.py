"""A `server.N=` line of zoo.cfg (ZooKeeper's QuorumPeer.QuorumServer): who the members of an
ensemble are, where they listen and in which role. Pure: zoo.cfg (coord.aio.zoocfg), the dynamic
configuration znode (coord.core.reconfig) and the simulator all read members through it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class QuorumServer:
    sid: int
    host: str
    quorum_port: int
    election_port: int
    role: str = "participant"
    client_host: str | None = None
    client_port: int | None = None
    # ZooKeeper 3.6+ multi-address lines (`a:q:e|b:q:e`, multiAddress.enabled): the addresses after
    # the first, as (host, quorum port, election port); a ZooKeeper observer dials them in turn
    alternates: tuple = ()

    def addresses(self) -> list[tuple[str, int, int]]:
        return [(self.host, self.quorum_port, self.election_port), *self.alternates]

    def spec(self) -> str:
        s = f"{self.host}:{self.quorum_port}:{self.election_port}"
        s += "".join(f"|{h}:{q}:{e}" for h, q, e in self.alternates)
        s += f":{self.role}"
        if self.client_port is not None:
            s += f";{self.client_host or '0.0.0.0'}:{self.client_port}"
        return s


def parse_int(v: str, key: str) -> int:
    try:
        return int(v.strip())
    except ValueError:
        raise ValueError(f"{key} must be an integer, got {v!r}") from None


def parse_port(v: str, key: str) -> int:
    p = parse_int(v, key)
    if not 0 <= p <= 65535:
        raise ValueError(f"{key} must be a port number (0-65535), got {p}")
    return p


def parse_hostport(s: str, what: str) -> tuple[str, int]:
    s = s.strip()
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = s.rpartition(":")
    if not host or not port:
        raise ValueError(f"{what} must be host:port, got {s!r}")
    return host, parse_port(port, what)


def parse_server_spec(sid: int, spec: str) -> QuorumServer:
    """`host:quorumPort:electionPort[:participant|observer][|host:quorumPort:electionPort[:role]...]
    [;[clientHost:]clientPort]` (more than one address: ZooKeeper's multi-address line)."""
    addr, _, client = spec.partition(";")
    role = "participant"
    addrs = []
    for one in addr.split("|"):
        parts = one.strip().split(":")
        if parts and parts[-1] in ("participant", "observer"):
            role = parts.pop()
        if len(parts) != 3:
            raise ValueError(f"server.{sid} must be host:quorumPort:electionPort[:role][;clientPort] "
                             f"(addresses separated by |), got {spec!r}")
        addrs.append((parts[0], parse_port(parts[1], f"server.{sid} quorum port"),
                      parse_port(parts[2], f"server.{sid} election port")))
    host, qp, ep = addrs[0]
    chost = cport = None
    if client.strip():
        c = client.strip()
        if ":" in c:
            chost, cport = parse_hostport(c, f"server.{sid} client address")
        else:
            chost, cport = "0.0.0.0", parse_port(c, f"server.{sid} client port")
    return QuorumServer(sid, host, qp, ep, role, chost, cport, tuple(addrs[1:]))
