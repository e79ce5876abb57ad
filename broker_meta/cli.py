"""`broker-meta`: Kafka's ZooKeeper-mode metadata from the command line.

Every command takes the ZooKeeper connect string as Kafka tools do (`--zookeeper host:port[,..]/chroot`,
or BROKER_META_ZOOKEEPER), prints rich tables, or JSON with `--json`.
"""
from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, Callable

import click
from rich.console import Console
from rich.table import Table

from . import cluster as cluster_mod
from . import codec, paths
from .configs import alter_entity_config, get_entity_config
from .controller import get_controller, get_controller_epoch
from .errors import BrokerMetaError
from .model import PartitionReassignment, PreferredReplicaElection, TopicPartition
from .registry import live_brokers
from .topics import (RACK_AWARE_DISABLED, RACK_AWARE_ENFORCED, add_partitions, create_topic, delete_topic,
                     describe_topics, get_partition_states, get_topic, list_topics)
from .zkclient import ZkClient, ZkTimeoutError

console = Console(log_path=False)
err = Console(stderr=True)


def _common(fn: Callable) -> Callable:
    @click.option("--zookeeper", "zookeeper", envvar="BROKER_META_ZOOKEEPER", default="localhost:2181",
                  show_default=True, help="host:port[,host:port]/chroot, as Kafka tools take it")
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    @click.option("--session-timeout-ms", default=30000, show_default=True, help="as kafka-configs uses")
    @functools.wraps(fn)
    def wrapper(zookeeper: str, as_json: bool, session_timeout_ms: int, **kw: Any) -> Any:
        try:
            zk = ZkClient(zookeeper, session_timeout_ms=session_timeout_ms, connection_timeout_ms=session_timeout_ms,
                          create_chroot=False, name="broker-meta-cli").start()
        except Exception as e:  # kazoo raises its own timeout type
            raise click.ClickException(f"cannot connect to ZooKeeper at {zookeeper}: {e}")
        try:
            return fn(zk, as_json, **kw)
        except (BrokerMetaError, ValueError, KeyError) as e:
            raise click.ClickException(str(e))
        finally:
            zk.close()
    return wrapper


def _emit(as_json: bool, data: Any, table: Callable[[], Any] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=None, sort_keys=False, default=str))
    elif table is not None:
        console.print(table())


def _parse_configs(spec: tuple[str, ...]) -> dict[str, str]:
    """`k=v,k2=[a,b]` (kafka-configs syntax; brackets protect commas) or repeated options."""
    out: dict[str, str] = {}
    for item in spec:
        depth, cur, parts = 0, "", []
        for ch in item:
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        for p in parts:
            if "=" not in p:
                raise click.BadParameter(f"{p!r} is not key=value")
            k, v = p.split("=", 1)
            if v.startswith("[") and v.endswith("]"):
                v = v[1:-1]
            out[k.strip()] = v
    return out


def _parse_assignment(spec: str) -> dict[int, list[int]]:
    """kafka-topics --replica-assignment: `1:2,2:3` = partition 0 on 1,2; partition 1 on 2,3."""
    return {p: [int(b) for b in part.split(":")] for p, part in enumerate(spec.split(","))}


@click.group()
@click.option("-v", "--verbose", count=True, help="log to stderr (-v info, -vv debug)")
def main(verbose: int) -> None:
    """Kafka ZooKeeper-mode cluster metadata: brokers, controller, topics, configs, partitions."""
    level = logging.WARNING if not verbose else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not verbose:
        logging.getLogger("kazoo").setLevel(logging.ERROR)


# brokers --------------------------------------------------------------------------------------------

@main.group()
def brokers() -> None:
    """Registered (live) brokers."""


def _broker_rows(zk: ZkClient) -> list[dict]:
    rows = []
    for b in live_brokers(zk):
        reg = b.registration
        rows.append({"id": b.broker_id, "epoch": b.broker_epoch, "session": f"0x{b.ephemeral_owner:x}",
                     "endpoints": [ep.connection_string for ep in reg.endpoints] if reg else [],
                     "rack": reg.rack if reg else None, "version": reg.version if reg else None,
                     "timestamp": reg.timestamp if reg else None})
    return rows


@brokers.command("list", help="Live brokers: /brokers/ids/N (ephemeral) with endpoints, rack and epoch.")
@_common
def brokers_list(zk: ZkClient, as_json: bool) -> None:
    rows = _broker_rows(zk)

    def table():
        t = Table(title="Brokers")
        for c in ("id", "endpoints", "rack", "epoch (czxid)", "session", "json v"):
            t.add_column(c)
        for r in rows:
            t.add_row(str(r["id"]), ", ".join(r["endpoints"]), r["rack"] or "-", str(r["epoch"]), r["session"],
                      str(r["version"]))
        return t
    _emit(as_json, rows, table)


# controller -----------------------------------------------------------------------------------------

@main.group()
def controller() -> None:
    """The active controller, and running Python brokers/controllers."""


@controller.command("show", help="The active controller (/controller) and the controller epoch (/controller_epoch).")
@_common
def controller_show(zk: ZkClient, as_json: bool) -> None:
    reg = get_controller(zk)
    epoch = get_controller_epoch(zk)
    data = {"controller": reg.broker_id if reg else None, "kraftControllerEpoch": reg.kraft_controller_epoch if reg else None,
            "json_version": reg.version if reg else None, "timestamp": reg.timestamp if reg else None,
            "controller_epoch": epoch[0] if epoch else None, "epoch_zk_version": epoch[1] if epoch else None}

    def table():
        t = Table(title="Controller")
        t.add_column("field")
        t.add_column("value")
        for k, v in data.items():
            t.add_row(k, "-" if v is None else str(v))
        return t
    _emit(as_json, data, table)


@controller.command("run")
@click.option("--zookeeper", envvar="BROKER_META_ZOOKEEPER", default="localhost:2181", show_default=True)
@click.option("--brokers", "broker_ids", required=True, help="ids of the Python brokers this process runs, e.g. 1,2,3")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port-base", default=9090, show_default=True, help="broker N listens (nominally) on port-base + N")
@click.option("--rack", default=None, help="rack of these brokers (rack-aware assignment)")
@click.option("--session-timeout-ms", default=18000, show_default=True)
@click.option("--unclean-leader-election", is_flag=True, help="elect out-of-ISR replicas when no ISR member lives")
@click.option("--no-auto-rebalance", is_flag=True, help="disable preferred-leader rebalancing")
@click.option("--rebalance-interval-s", default=300.0, show_default=True)
@click.option("--imbalance-pct", default=10, show_default=True)
@click.option("--rejoin-isr", type=click.Choice(["immediate", "leader"]), default="immediate", show_default=True)
@click.option("--controller-json-version", type=click.Choice(["1", "2"]), default="2", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="events as JSON lines")
def controller_run(zookeeper: str, broker_ids: str, host: str, port_base: int, rack: str | None,
                   session_timeout_ms: int, unclean_leader_election: bool, no_auto_rebalance: bool,
                   rebalance_interval_s: float, imbalance_pct: int, rejoin_isr: str, controller_json_version: str,
                   as_json: bool) -> None:
    """Run Python brokers that register, elect a controller among all brokers (Java/Kafka ones too)
    and, when elected, move partition leadership on failures and joins. Stops on SIGINT/SIGTERM."""
    from .broker_node import BrokerNode, BrokerNodeConfig
    from .stream_controller import ControllerConfig

    cfg = ControllerConfig(unclean_leader_election=unclean_leader_election, auto_leader_rebalance=not no_auto_rebalance,
                           leader_imbalance_check_interval_s=rebalance_interval_s,
                           leader_imbalance_per_broker_percentage=imbalance_pct, rejoin_isr=rejoin_isr)
    ids = [int(x) for x in broker_ids.split(",") if x.strip()]
    out_lock = threading.Lock()

    def say(event: str, **detail: Any) -> None:
        with out_lock:
            if as_json:
                click.echo(json.dumps({"ts": time.time(), "event": event, **detail}), nl=True)
                sys.stdout.flush()
            else:
                console.log(f"[bold]{event}[/bold] " + " ".join(f"{k}={v}" for k, v in detail.items()))

    nodes = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        for i in ids:
            node = BrokerNode(zookeeper, BrokerNodeConfig(i, host=host, port=port_base + i, rack=rack,
                                                          session_timeout_ms=session_timeout_ms,
                                                          controller_json_version=int(controller_json_version),
                                                          controller=cfg))
            node.start()
            node.controller.listeners.append(lambda what, d, i=i: say(what, broker=i, **d))
            nodes.append(node)
            say("registered", broker=i, epoch=node.registry.broker_epoch, cluster_id=node.cluster_id)
        while not stop.wait(0.5):
            pass
    finally:
        for n in nodes:
            n.stop()
        say("stopped", brokers=ids)


# topics ---------------------------------------------------------------------------------------------

@main.group()
def topics() -> None:
    """Create, describe, alter, delete and list topics."""


@topics.command("create", help="Create a topic as kafka-topics --create: give --partitions and "
                "--replication-factor, or --replica-assignment.")
@click.option("--topic", required=True, help="topic name")
@click.option("--partitions", type=int, help="number of partitions (with --replication-factor)")
@click.option("--replication-factor", type=int, help="replicas per partition, placed on live brokers")
@click.option("--replica-assignment", help="p0 brokers ':'-separated, partitions ','-separated, e.g. 1:2,2:3")
@click.option("--config", "configs", multiple=True, help="k=v (repeatable or comma-separated)")
@click.option("--disable-rack-aware", is_flag=True, help="ignore broker racks when placing replicas")
@click.option("--if-not-exists", is_flag=True, help="succeed quietly if the topic exists")
@_common
def topics_create(zk: ZkClient, as_json: bool, topic: str, partitions: int | None, replication_factor: int | None,
                  replica_assignment: str | None, configs: tuple[str, ...], disable_rack_aware: bool,
                  if_not_exists: bool) -> None:
    if get_topic(zk, topic) is not None and if_not_exists:
        _emit(as_json, {"topic": topic, "created": False}, lambda: f"Topic {topic} already exists.")
        return
    assignment = _parse_assignment(replica_assignment) if replica_assignment else None
    created = create_topic(zk, topic, partitions, replication_factor, config=_parse_configs(configs),
                           assignment=assignment,
                           rack_aware_mode=RACK_AWARE_DISABLED if disable_rack_aware else RACK_AWARE_ENFORCED)
    data = {"topic": topic, "created": True, "topic_id": created.topic_id,
            "partitions": {str(p): list(ra.replicas) for p, ra in created.partitions.items()}}
    _emit(as_json, data, lambda: f"Created topic {topic}.")


def _topic_json(d) -> dict:
    return {"topic": d.name, "topic_id": d.topic_id, "config": d.config, "marked_for_deletion": d.marked_for_deletion,
            "partitions": [{"partition": p.partition, "leader": p.leader, "replicas": list(p.replicas),
                            "isr": list(p.isr), "leader_epoch": p.state.leader_epoch if p.state else None,
                            "partition_epoch": p.state.partition_epoch if p.state else None,
                            "controller_epoch": p.state.controller_epoch if p.state else None}
                           for p in d.partitions]}


@topics.command("describe", help="Partitions, replicas, leaders and ISRs of the named topics (all topics if none).")
@click.option("--topic", "topic_names", multiple=True)
@_common
def topics_describe(zk: ZkClient, as_json: bool, topic_names: tuple[str, ...]) -> None:
    descs = describe_topics(zk, list(topic_names) or None)
    data = [_topic_json(d) for d in descs]

    def tables():
        t = Table(title="Topics")
        for c in ("topic", "partition", "leader", "replicas", "isr", "leader epoch", "partition epoch"):
            t.add_column(c)
        for d in data:
            for p in d["partitions"]:
                t.add_row(d["topic"] + (" (marked for deletion)" if d["marked_for_deletion"] else ""),
                          str(p["partition"]), "none" if p["leader"] < 0 else str(p["leader"]),
                          ",".join(map(str, p["replicas"])), ",".join(map(str, p["isr"])), str(p["leader_epoch"]),
                          str(p["partition_epoch"]))
        return t
    _emit(as_json, data, tables)


@topics.command("alter", help="Add partitions to a topic (kafka-topics --alter --partitions).")
@click.option("--topic", required=True)
@click.option("--partitions", type=int, required=True, help="new total partition count")
@click.option("--replica-assignment", help="assignment of the new partitions only")
@_common
def topics_alter(zk: ZkClient, as_json: bool, topic: str, partitions: int, replica_assignment: str | None) -> None:
    assignment = None
    if replica_assignment:
        existing = get_topic(zk, topic)
        start = len(existing.partitions) if existing else 0
        assignment = {start + i: r for i, r in _parse_assignment(replica_assignment).items()}
    a = add_partitions(zk, topic, partitions, assignment)
    _emit(as_json, {"topic": topic, "partitions": {str(p): list(r.replicas) for p, r in a.partitions.items()}},
          lambda: f"Topic {topic} now has {len(a.partitions)} partitions.")


@topics.command("delete", help="Mark a topic for deletion (/admin/delete_topics); the controller deletes it.")
@click.option("--topic", required=True)
@_common
def topics_delete(zk: ZkClient, as_json: bool, topic: str) -> None:
    delete_topic(zk, topic)
    _emit(as_json, {"topic": topic, "marked_for_deletion": True},
          lambda: f"Topic {topic} is marked for deletion.")


@topics.command("list", help="Topic names under /brokers/topics.")
@_common
def topics_list(zk: ZkClient, as_json: bool) -> None:
    names = list_topics(zk)
    _emit(as_json, names, lambda: "\n".join(names) if names else "(no topics)")


# configs --------------------------------------------------------------------------------------------

@main.group()
def configs() -> None:
    """Entity configs under /config (topics, clients, users, brokers, ips)."""


@configs.command("get", help="The config overrides of one entity (/config/TYPE/NAME).")
@click.option("--entity-type", type=click.Choice(list(paths.CONFIG_TYPES)), required=True)
@click.option("--entity-name", required=True)
@_common
def configs_get(zk: ZkClient, as_json: bool, entity_type: str, entity_name: str) -> None:
    cfg = get_entity_config(zk, entity_type, entity_name)

    def table():
        t = Table(title=f"Configs for {entity_type} {entity_name}")
        t.add_column("key")
        t.add_column("value")
        for k, v in cfg.items():
            t.add_row(k, v)
        return t
    _emit(as_json, cfg, table)


@configs.command("set", help="Add or delete config overrides of one entity, notifying brokers (kafka-configs --alter).")
@click.option("--entity-type", type=click.Choice(list(paths.CONFIG_TYPES)), required=True)
@click.option("--entity-name", required=True)
@click.option("--add-config", "add", multiple=True, help="k=v[,k2=v2]")
@click.option("--delete-config", "delete", multiple=True, help="k[,k2]")
@_common
def configs_set(zk: ZkClient, as_json: bool, entity_type: str, entity_name: str, add: tuple[str, ...],
                delete: tuple[str, ...]) -> None:
    deletes = [k for item in delete for k in item.split(",") if k]
    merged = alter_entity_config(zk, entity_type, entity_name, add=_parse_configs(add), delete=deletes)
    _emit(as_json, merged, lambda: f"Completed updating config for {entity_type} {entity_name}.")


# partitions -----------------------------------------------------------------------------------------

@main.group()
def partitions() -> None:
    """Partition leadership: show, preferred election, reassignment."""


@partitions.command("show", help="Leader, ISR and epochs of every partition (state znodes), "
                   "optionally only the unhealthy ones.")
@click.option("--topic", "topic_names", multiple=True)
@click.option("--unavailable", is_flag=True, help="only partitions without a live leader")
@click.option("--under-replicated", is_flag=True, help="only partitions whose ISR is smaller than the replica set")
@_common
def partitions_show(zk: ZkClient, as_json: bool, topic_names: tuple[str, ...], unavailable: bool,
                    under_replicated: bool) -> None:
    live = {b.broker_id for b in live_brokers(zk)}
    rows = []
    for d in describe_topics(zk, list(topic_names) or None):
        for p in d.partitions:
            row = {"topic": d.name, "partition": p.partition, "leader": p.leader, "replicas": list(p.replicas),
                   "isr": list(p.isr), "leader_epoch": p.state.leader_epoch if p.state else None,
                   "partition_epoch": p.state.partition_epoch if p.state else None,
                   "preferred_leader": p.replicas[0] if p.replicas else None}
            if unavailable and p.leader in live:
                continue
            if under_replicated and len(p.isr) >= len(p.replicas):
                continue
            rows.append(row)

    def table():
        t = Table(title="Partitions")
        for c in ("topic", "partition", "leader", "preferred", "replicas", "isr", "leader epoch", "partition epoch"):
            t.add_column(c)
        for r in rows:
            leader = "none" if r["leader"] < 0 else str(r["leader"])
            if r["leader"] >= 0 and r["leader"] not in live:
                leader += " (dead)"
            t.add_row(r["topic"], str(r["partition"]), leader, str(r["preferred_leader"]),
                      ",".join(map(str, r["replicas"])), ",".join(map(str, r["isr"])), str(r["leader_epoch"]),
                      str(r["partition_epoch"]))
        return t
    _emit(as_json, rows, table)


@partitions.command("elect-preferred")
@click.option("--topic", "topic_names", multiple=True)
@click.option("--partition", "partition_ids", multiple=True, type=int)
@_common
def partitions_elect_preferred(zk: ZkClient, as_json: bool, topic_names: tuple[str, ...],
                               partition_ids: tuple[int, ...]) -> None:
    """Ask the controller (Kafka's or ours) through /admin/preferred_replica_election."""
    names = list(topic_names) or list_topics(zk)
    tps = []
    for t in names:
        a = get_topic(zk, t)
        if a is None:
            raise click.ClickException(f"Topic {t} does not exist")
        tps += [TopicPartition(t, p) for p in sorted(a.partitions) if not partition_ids or p in partition_ids]
    try:
        zk.create(paths.PREFERRED_REPLICA_ELECTION, codec.encode_preferred_replica_election(PreferredReplicaElection(tuple(tps))))
    except Exception as e:
        if getattr(e, "code", None) == -110:
            raise click.ClickException("a preferred replica election is already in progress")
        raise
    _emit(as_json, {"requested": [str(tp) for tp in tps]},
          lambda: f"Requested preferred replica election for {len(tps)} partition(s).")


@partitions.command("reassign")
@click.option("--reassignment-json-file", type=click.File("r"), help='{"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..]}]}')
@click.option("--topic")
@click.option("--partition", type=int)
@click.option("--replicas", help="new replica list, e.g. 3,1,2")
@_common
def partitions_reassign(zk: ZkClient, as_json: bool, reassignment_json_file, topic: str | None, partition: int | None,
                        replicas: str | None) -> None:
    """Write /admin/reassign_partitions (the znode path Kafka's controller still honours)."""
    if reassignment_json_file is not None:
        r = codec.decode_reassignment(reassignment_json_file.read().encode())
    elif topic is not None and partition is not None and replicas:
        r = PartitionReassignment(((TopicPartition(topic, partition), tuple(int(b) for b in replicas.split(","))),))
    else:
        raise click.UsageError("give --reassignment-json-file or --topic/--partition/--replicas")
    for tp, _ in r.partitions:
        a = get_topic(zk, tp.topic)
        if a is None or tp.partition not in a.partitions:
            raise click.ClickException(f"{tp} does not exist")
    try:
        zk.create(paths.REASSIGN_PARTITIONS, codec.encode_reassignment(r))
    except Exception as e:
        if getattr(e, "code", None) == -110:
            raise click.ClickException("a partition reassignment is already in progress")
        raise
    _emit(as_json, {"requested": [{"topic": tp.topic, "partition": tp.partition, "replicas": list(rs)}
                                  for tp, rs in r.partitions]},
          lambda: f"Requested reassignment of {len(r.partitions)} partition(s).")


# cluster --------------------------------------------------------------------------------------------

@main.group()
def cluster() -> None:
    """Cluster-wide znodes."""


@cluster.command("id", help="The cluster id (/cluster/id) that the first broker creates.")
@click.option("--create", is_flag=True, help="create one if the cluster has none yet")
@_common
def cluster_id(zk: ZkClient, as_json: bool, create: bool) -> None:
    cid = cluster_mod.get_or_create_cluster_id(zk) if create else cluster_mod.get_cluster_id(zk)
    _emit(as_json, {"cluster_id": cid}, lambda: cid or "(no cluster id yet)")


# watch ----------------------------------------------------------------------------------------------

def render_view(view) -> Table:
    from rich.console import Group
    live = {b.broker_id for b in view.brokers}
    leaders = view.leaders_by_broker()
    bt = Table(title="Brokers")
    for c in ("id", "endpoints", "rack", "epoch", "leaders"):
        bt.add_column(c)
    for b in view.brokers:
        reg = b.registration
        bt.add_row(str(b.broker_id), ", ".join(ep.connection_string for ep in reg.endpoints) if reg else "?",
                   (reg.rack if reg else None) or "-", str(b.broker_epoch), str(leaders.get(b.broker_id, 0)))
    c = view.controller
    head = (f"controller: {c.broker_id if c else 'none'}"
            f"{' (KRaft)' if c and c.is_kraft else ''}   controller epoch: {view.controller_epoch}   "
            f"partitions: {len(view.states)}   offline: {len(view.offline_partitions())}")
    pt = Table(title="Partition leaders")
    for col in ("topic", "partition", "leader", "isr", "replicas", "leader epoch"):
        pt.add_column(col)
    for tp in sorted(view.states)[:200]:
        st = view.states[tp]
        replicas = view.topics[tp.topic].partitions[tp.partition].replicas if tp.topic in view.topics else ()
        leader = "-" if st is None else ("none" if st.leader < 0 else str(st.leader))
        if st is not None and st.leader >= 0 and st.leader not in live:
            leader = f"[red]{leader} (dead)[/red]"
        pt.add_row(tp.topic, str(tp.partition), leader, ",".join(map(str, st.isr)) if st else "-",
                   ",".join(map(str, replicas)), str(st.leader_epoch) if st else "-")
    return Group(head, bt, pt)


def view_json(view) -> dict:
    return {"controller": view.controller.broker_id if view.controller else None,
            "controller_epoch": view.controller_epoch,
            "brokers": [{"id": b.broker_id, "epoch": b.broker_epoch} for b in view.brokers],
            "partitions": [{"topic": tp.topic, "partition": tp.partition,
                            "leader": st.leader if st else None, "isr": list(st.isr) if st else None,
                            "leader_epoch": st.leader_epoch if st else None}
                           for tp, st in sorted(view.states.items())]}


@main.command("watch")
@click.option("--once", is_flag=True, help="print the current view and exit")
@click.option("--duration", type=float, default=None, help="stop after this many seconds")
@_common
def watch(zk: ZkClient, as_json: bool, once: bool, duration: float | None) -> None:
    """Live view of brokers, controller and partition leaders, driven by ZooKeeper watches."""
    from rich.live import Live
    from .metadata_cache import MetadataCache
    cache = MetadataCache(zk).start()
    try:
        if once:
            if as_json:
                click.echo(json.dumps(view_json(cache.view)))
            else:
                console.print(render_view(cache.view))
            return
        deadline = None if duration is None else time.monotonic() + duration
        seen = cache.version
        if as_json:
            click.echo(json.dumps(view_json(cache.view)))
            while deadline is None or time.monotonic() < deadline:
                seen2 = cache.wait_for_change(seen, 0.5)
                if seen2 != seen:
                    seen = seen2
                    click.echo(json.dumps(view_json(cache.view)))
                    sys.stdout.flush()
            return
        with Live(render_view(cache.view), console=console, refresh_per_second=4) as live:
            while deadline is None or time.monotonic() < deadline:
                seen2 = cache.wait_for_change(seen, 0.5)
                if seen2 != seen:
                    seen = seen2
                    live.update(render_view(cache.view))
    except KeyboardInterrupt:
        pass
    finally:
        cache.close()


# bench ----------------------------------------------------------------------------------------------

@main.command("bench")
@click.option("--zookeeper", envvar="BROKER_META_ZOOKEEPER", required=True, help="target to measure (with a chroot, or one is made)")
@click.option("--compare", "compare", multiple=True, help="other targets measured in the same run")
@click.option("--brokers", "n_brokers", default=20, show_default=True)
@click.option("--partitions", "n_partitions", default=4000, show_default=True)
@click.option("--partitions-per-topic", default=50, show_default=True)
@click.option("--replication-factor", default=3, show_default=True)
@click.option("--leaders-on-dead-broker", default=None, type=int, help="default: partitions / brokers")
@click.option("--full", is_flag=True, help="Kafka ZooKeeper-mode scale: 200,000 partitions over 100 brokers, 2,000 leaders moved")
@click.option("--json", "as_json", is_flag=True)
def bench(zookeeper: str, compare: tuple[str, ...], n_brokers: int, n_partitions: int, partitions_per_topic: int,
          replication_factor: int, leaders_on_dead_broker: int | None, full: bool, as_json: bool) -> None:
    """Topic creation at scale, controller failover, leadership moved off a dead broker."""
    from .bench import BenchConfig, format_table, run_bench
    cfg = BenchConfig(n_brokers, n_partitions, partitions_per_topic, replication_factor, leaders_on_dead_broker)
    if full:
        cfg = BenchConfig.full_scale()
    results = [run_bench(t, cfg, log=lambda m: err.log(m)) for t in (zookeeper, *compare)]
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results]))
    else:
        console.print(format_table(results))


if __name__ == "__main__":
    main()
