"""Scenario 3, slow: an ensemble server holding broker sessions is cut off from the other two (every
peer link through the fault proxy) under continuous produce/consume. The brokers on it reconnect to
the others with the same sessions: no re-registration, same epochs and controller; every acked
message consumed exactly once in order. On its own proxied cluster (the shared one has no proxy)."""
from __future__ import annotations

import re
import time

import pytest

from tests.kafka.conftest import BACKENDS, SESSION_TIMEOUT_MS, kafka_cluster_on
from tests.kafka.load import under_load
from tests.kafka.test_faults import broker_sessions, create_topic

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BACKENDS)
def proxied_kafka(request, tmp_path_factory):
    """syncLimit 3 ticks (3 s), well inside the brokers' 10 s sessions. A cut-off follower answers its
    clients' pings until it notices the leader is gone (syncLimit x tickTime) while the leader, which
    no longer hears of those sessions, expires them at their timeout: with syncLimit x tickTime >= the
    session timeout the brokers' sessions expire, on ZooKeeper as on coord (seen with 10 x 1000 ms)."""
    work = tmp_path_factory.mktemp(f"kafka-proxied-{request.param}")
    with kafka_cluster_on(request.param, work, proxied=True, security=False, sync_limit=3) as env:
        yield env


def sessions_on(member) -> set[int]:
    """Session ids connected to this server (the `cons` four-letter word, as ZooKeeper prints it)."""
    try:
        return {int(x, 16) for x in re.findall(r"sid=0x([0-9a-f]+)", member.four("cons"))}
    except OSError:
        return set()


def where_sessions_are(kafka, owners: dict[int, int], cut: int) -> str:
    """For a failure: each broker's session before the cut, which members list it now (`cons`),
    and who owns its registration now (a new owner: the session expired and the broker re-registered)."""
    ens, c = kafka.ensemble, kafka.cluster
    listed = {sid: sessions_on(m) for sid, m in ens.members.items()}
    out = []
    for i, o in sorted(owners.items()):
        try:
            now = c.zk.retry(c.zk.exists, f"/kafka/brokers/ids/{i}")
            now_owner = f"0x{now.ephemeralOwner:x}" if now else "no registration"
        except Exception as e:   # noqa: BLE001 - a diagnostic must not hide the failure it explains
            now_owner = f"unreadable ({e!r})"
        out.append(f"broker {i}: session 0x{o:x} listed on {sorted(s for s, v in listed.items() if o in v)}, "
                   f"registration now owned by {now_owner}")
    modes = {sid: m.mode() for sid, m in ens.members.items()}
    return f"cut {cut}; modes {modes}; " + "; ".join(out) + f"; broker logs: {broker_sessions(kafka)}"


def test_server_holding_broker_sessions_cut_off(proxied_kafka):
    kafka = proxied_kafka
    ens, c = kafka.ensemble, kafka.cluster
    # a rerun finds the cluster as the failed try left it: wait for every broker's registration,
    # through a harness session that may have expired meanwhile
    c.wait_ready(wait=120)
    owners = {i: c.zk.retry(c.zk.exists, f"/kafka/brokers/ids/{i}").ephemeralOwner for i in c.brokers}
    leader = ens.leader().sid
    held = {sid: {i for i, o in owners.items() if o in sessions_on(m)} for sid, m in ens.members.items()}
    # A follower holding a broker session when one does (the usual case), else the leader.
    candidates = sorted(held, key=lambda sid: (sid == leader, -len(held[sid])))
    cut = next(sid for sid in candidates if held[sid])
    topic = create_topic(kafka)
    with under_load(kafka.bootstrap, topic) as load:
        before = broker_sessions(kafka)
        t0 = time.monotonic()
        ens.proxy.isolate(cut, list(ens.members))
        try:
            try:
                moved = c.wait_for(lambda: all(owners[i] in set().union(*(sessions_on(m) for s, m in ens.members.items()
                                                                          if s != cut)) for i in held[cut]), 60,
                                   describe=f"brokers {sorted(held[cut])} reconnected to another server")
            except TimeoutError as e:
                raise AssertionError(f"{e}: {where_sessions_are(kafka, owners, cut)}") from None
            time.sleep(max(0.0, SESSION_TIMEOUT_MS / 1000 + 2 - (time.monotonic() - t0)))
            assert moved and broker_sessions(kafka) == before
            load.still_flowing()
        finally:
            ens.proxy.heal()
        ens.wait_serving(wait=90)
        load.still_flowing()
    assert broker_sessions(kafka) == before
    print(f"{kafka.backend}: server {cut} ({'leader' if cut == leader else 'follower'}) cut off, holding brokers "
          f"{sorted(held[cut])}; {load.check()} acked messages consumed once in order; longest gap between acks "
          f"{load.max_ack_gap():.2f}s")
