"""`coord migrate take-over`: the last step of moving a live ZooKeeper ensemble onto coord
(docs/migration.md). The coord observers named by the zoo.cfg (its `:observer` lines) leave the
ZooKeeper ensemble and form coord's own from the state they hold; each refuses while any ZooKeeper
voter (`:participant` line) still answers, and so does this command, before it asks anything."""
from __future__ import annotations

import asyncio
import logging

from coord.aio.zkobserver import TAKEOVER_WORD, answering_voters
from coord.aio.zoocfg import ServerConfig

log = logging.getLogger("coord.migrate")


async def _ask(host: str, port: int, timeout_s: float, word: str = TAKEOVER_WORD) -> str:
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    try:
        w.write(word.encode())
        await w.drain()
        return (await asyncio.wait_for(r.read(), timeout_s)).decode(errors="replace").strip()
    finally:
        w.close()


async def take_over(cfg: ServerConfig, timeout_s: float = 30.0, wait_s: float = 0.0) -> tuple[bool, list[str]]:
    """(all took over, one line per server). wait_s > 0: wait up to that long for the ZooKeeper
    voters to stop answering (the operator stops them after starting this), then take over at
    once, inside the observers' hold window whatever this process's own start cost."""
    voters = {s: q for s, q in cfg.servers.items() if q.role == "participant"}
    coord = {s: q for s, q in cfg.servers.items() if q.role == "observer"}
    if not coord:
        return False, ["no server.N=...:observer lines: no coord observers to take over"]
    missing = [s for s, q in coord.items() if q.client_port is None]
    if missing:
        return False, [f"server.{s} has no client port (;port at the end of its line): cannot reach it" for s in missing]
    answering = await answering_voters(voters)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while answering and loop.time() < deadline:
        await asyncio.sleep(0.05)
        answering = await answering_voters(voters, 0.5)
    log.info("take-over: %d ZooKeeper voter ports answer", len(answering))
    if answering:
        return False, ["refused: ZooKeeper voters still answer: " + ", ".join(answering) +
                       "; stop every ZooKeeper server first (nothing was changed)"]
    def host_of(q):
        return q.client_host if q.client_host not in (None, "", "0.0.0.0") else q.host

    async def zxid(sid, q):
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
    return all(": ok:" in line for line in lines), list(lines)
