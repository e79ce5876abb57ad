"""`coord migrate take-over`: the last step of moving a live ZooKeeper ensemble onto coord
(docs/migration.md). The coord observers leave the ZooKeeper ensemble and form coord's own from the
state they hold; each refuses while any ZooKeeper voter still answers, and so does this command,
before it asks anything. Which servers take part is the ensemble's current configuration as the
observers named by the zoo.cfg (its `:observer` lines) know it: an observer added later by
`reconfig -add` takes part too, one removed by `reconfig -remove` does not.
"""
from __future__ import annotations

import asyncio
import logging

from coord.aio.zkobserver import TAKEOVER_WORD, answering_voters, still_answering
from coord.aio.zoocfg import ServerConfig
from coord.core import reconfig as rc

log = logging.getLogger("coord.migrate")


async def _ask(host: str, port: int, timeout_s: float, word: str = TAKEOVER_WORD) -> str:
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    try:
        w.write(word.encode())
        await w.drain()
        return (await asyncio.wait_for(r.read(), timeout_s)).decode(errors="replace").strip()
    finally:
        w.close()


def host_of(q) -> str:
    return q.client_host if q.client_host not in (None, "", "0.0.0.0") else q.host


async def current_members(cfg: ServerConfig, named: dict, timeout_s: float) -> tuple[dict, dict, list[str]]:
    """(the ensemble's servers, {sid: last zxid} of the observers that answered, notes): the newest
    configuration any named observer holds (`tkov members`: zoo.cfg's lines, then every reconfig it
    applied, as ZooKeeper's observers track it from COMMITANDACTIVATE / INFORMANDACTIVATE), or
    zoo.cfg's own lines when none answers."""
    async def view(sid, q):
        if q.client_port is None:
            return None
        try:
            text = await _ask(host_of(q), q.client_port, timeout_s, TAKEOVER_WORD + " members\n")
            servers, version = rc.parse(text.encode())
            zxid = int(text.rsplit("zxid=", 1)[1].split()[0], 16)
        except (OSError, asyncio.TimeoutError, ValueError, IndexError):
            return None          # not a coord observer's answer (or an older coord's)
        if not any(v.role == "participant" for v in servers.values()):
            return None
        return version, sid, servers, zxid
    views = [v for v in await asyncio.gather(*(view(s, q) for s, q in sorted(named.items()))) if v]
    zxids = {v[1]: v[3] for v in views}
    if not views:
        log.info("take-over: no observer told its view of the ensemble; using %s", cfg.path)
        return dict(cfg.servers), zxids, []
    version, sid, servers, _ = max(views, key=lambda v: (v[0], v[1]))
    observers = sorted(s for s, q in servers.items() if q.role == "observer")
    notes = [f"members: server.{sid}'s view of the ensemble (configuration version 0x{version:x}): "
             f"coord observers {','.join(map(str, observers))}"]
    notes += [f"server.{s}: named in {cfg.path} but not in the ensemble's current configuration: not asked"
              for s in sorted(set(named) - set(observers))]
    log.info("take-over: %s", "; ".join(notes))
    return servers, zxids, notes


async def take_over(cfg: ServerConfig, timeout_s: float = 30.0, wait_s: float = 0.0) -> tuple[bool, list[str]]:
    """(all took over, one line per server, then notes on the members). wait_s > 0: wait up to that long for the ZooKeeper
    voters to stop answering (the operator stops them after starting this), then take over at
    once, inside the observers' hold window whatever this process's own start cost."""
    named = {s: q for s, q in cfg.servers.items() if q.role == "observer"}
    if not named:
        return False, ["no server.N=...:observer lines: no coord observers to take over"]
    voters = {s: q for s, q in cfg.servers.items() if q.role == "participant"}
    answering = await answering_voters(voters)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while answering and loop.time() < deadline:
        await asyncio.sleep(0.05)
        answering = await answering_voters(voters, 0.5)
    log.info("take-over: %d ZooKeeper voter ports answer", len(answering))
    if answering:
        return False, ["refused: " + still_answering(answering)]
    members, zxids, notes = await current_members(cfg, named, min(timeout_s, 5.0))
    added = {s: q for s, q in members.items() if q.role == "participant" and s not in voters}
    answering = await answering_voters(added) if added else []    # voters a reconfig added
    if answering:
        return False, notes + ["refused: " + still_answering(answering)]
    coord = {s: q for s, q in members.items() if q.role == "observer"}
    missing = [s for s, q in coord.items() if q.client_port is None]
    if missing:
        return False, notes + [f"server.{s} has no client port (;port at the end of its line): cannot reach it"
                               for s in missing]

    async def zxid(sid, q):
        if sid in zxids:
            return zxids[sid], sid
        try:
            text = await _ask(host_of(q), q.client_port, min(timeout_s, 5.0), TAKEOVER_WORD + " zxid\n")
        except (OSError, asyncio.TimeoutError):
            return None
        parts = text.split()
        if len(parts) == 2 and parts[0] == "zxid":
            try:
                return int(parts[1], 16), sid
            except ValueError:
                return None
        return None
    # Name the leader (the highest zxid, then the highest sid, as an election would choose), so
    # that the members switch in place without an election; if any observer cannot say, they elect.
    known = await asyncio.gather(*(zxid(sid, q) for sid, q in sorted(coord.items())))
    log.info("take-over: last zxids %s", ", ".join(f"server.{k[1]} 0x{k[0]:x}" if k else "?" for k in known))
    word = TAKEOVER_WORD
    if all(k is not None for k in known):
        word += f" leader={max(known)[1]}\n"

    async def one(sid, q):
        host = host_of(q)
        try:
            answer = await _ask(host, q.client_port, timeout_s, word)
        except (OSError, asyncio.TimeoutError) as e:
            answer = f"refused: no answer from {host}:{q.client_port}: {e}"
        return f"server.{sid}: {answer or 'refused: empty answer (not a coord observer?)'}"
    # all at once: the members elect as soon as a quorum of them has switched
    log.info("take-over: asking %s", word.strip())
    lines = await asyncio.gather(*(one(sid, q) for sid, q in sorted(coord.items())))
    log.info("take-over: every observer answered")
    return all(": ok:" in line for line in lines), list(lines) + notes
