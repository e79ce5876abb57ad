"""The three ZooKeeper images' environment contracts, read as each image reads them
(shared/reference/zk-ops-ecosystem.md section 1): the zoo.cfg lines, myid and paths they produce, and
the variables that stop the start, named."""
from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coord.aio import zoocfg
from coord.container import env as cenv
from coord.container.env import BITNAMI, CONFLUENT, OFFICIAL, EnvError, Existing, plan


def lines(p) -> list[str]:
    assert p.zoo_cfg.startswith(cenv.MARK + "\n")
    return p.zoo_cfg.splitlines()[1:]


CANONICAL_SERVERS = "server.1=zoo1:2888:3888;2181 server.2=zoo2:2888:3888;2181 server.3=zoo3:2888:3888;2181"


# -- the official image ----------------------------------------------------------------------------

def test_official_defaults_are_the_dockerfile_env_in_the_entrypoint_order():
    p = plan({})
    assert p.layout == cenv.Layout(OFFICIAL, cenv.PurePosixPath("/conf/zoo.cfg"), cenv.PurePosixPath("/data"),
                                   cenv.PurePosixPath("/datalog"))
    assert lines(p) == [
        "dataDir=/data", "dataLogDir=/datalog", "tickTime=2000", "initLimit=5", "syncLimit=2",
        "autopurge.snapRetainCount=3", "autopurge.purgeInterval=0", "maxClientCnxns=60",
        "standaloneEnabled=true", "admin.enableServer=true", "server.1=localhost:2888:3888;2181"]
    assert "clientPort" not in p.zoo_cfg          # the client port comes from the server line
    assert p.myid == "1"


def test_official_canonical_compose_member():
    p = plan({"ZOO_MY_ID": "2", "ZOO_SERVERS": CANONICAL_SERVERS})
    assert lines(p)[-3:] == CANONICAL_SERVERS.split()
    assert p.myid == "2"


def test_official_every_variable_lands_on_its_key():
    env = {"ZOO_DATA_DIR": "/d", "ZOO_DATA_LOG_DIR": "/l", "ZOO_CONF_DIR": "/c", "ZOO_TICK_TIME": "500",
           "ZOO_INIT_LIMIT": "7", "ZOO_SYNC_LIMIT": "3", "ZOO_AUTOPURGE_PURGEINTERVAL": "1",
           "ZOO_AUTOPURGE_SNAPRETAINCOUNT": "5", "ZOO_MAX_CLIENT_CNXNS": "0", "ZOO_STANDALONE_ENABLED": "false",
           "ZOO_ADMINSERVER_ENABLED": "false", "ZOO_4LW_COMMANDS_WHITELIST": "ruok, srvr, mntr",
           "ZOO_CFG_EXTRA": "forceSync=no snapCount=1000", "ZOO_MY_ID": "1",
           "ZOO_SERVERS": "server.1=0.0.0.0:2888:3888;2181"}
    p = plan(env)
    assert p.layout.conf_file == cenv.PurePosixPath("/c/zoo.cfg")
    assert lines(p) == [
        "dataDir=/d", "dataLogDir=/l", "tickTime=500", "initLimit=7", "syncLimit=3",
        "autopurge.snapRetainCount=5", "autopurge.purgeInterval=1", "maxClientCnxns=0",
        "standaloneEnabled=false", "admin.enableServer=false", "server.1=0.0.0.0:2888:3888;2181",
        "4lw.commands.whitelist=ruok, srvr, mntr", "forceSync=no", "snapCount=1000"]
    cfg = zoocfg.parse(p.zoo_cfg)
    assert (cfg.tick_ms, cfg.init_limit, cfg.sync_limit, cfg.purge_interval_hours, cfg.snap_retain_count,
            cfg.max_client_cnxns, cfg.standalone_enabled, cfg.force_sync, cfg.snap_count) == \
        (500, 7, 3, 1, 5, 0, False, False, 1000)
    assert cfg.four_letter_whitelist == {"ruok", "srvr", "mntr"}


def test_official_empty_servers_and_myid_take_the_defaults_as_the_shell_does():
    p = plan({"ZOO_SERVERS": "", "ZOO_MY_ID": ""})
    assert lines(p)[-1] == "server.1=localhost:2888:3888;2181" and p.myid == "1"


def test_official_4lw_line_only_when_set():
    assert "4lw" not in plan({"ZOO_4LW_COMMANDS_WHITELIST": ""}).zoo_cfg


def test_an_existing_zoo_cfg_and_myid_are_never_overwritten():
    p = plan({"ZOO_MY_ID": "3", "ZOO_SERVERS": CANONICAL_SERVERS},
             Existing(zoo_cfg="dataDir=/data\n", myid=True, data_dir_empty=False))
    assert p.zoo_cfg is None and p.myid is None
    assert any("kept as it is" in n for n in p.notes)
    # myid alone missing: written; zoo.cfg alone missing: written
    assert plan({"ZOO_MY_ID": "3", "ZOO_SERVERS": CANONICAL_SERVERS}, Existing(zoo_cfg="x=1\n")).myid == "3"
    assert plan({}, Existing(myid=True)).zoo_cfg is not None


def test_jvm_system_properties_apply_even_over_an_existing_file():
    p = plan({"JVMFLAGS": "-Xmx1024m -Dzookeeper.4lw.commands.whitelist=* -Djava.net.preferIPv4Stack=true"},
             Existing(zoo_cfg="dataDir=/data\n", myid=True))
    assert p.overrides == [("4lw.commands.whitelist", "*")]
    assert [n.split(":")[0] for n in p.notes if "JVM option" in n] == ["JVMFLAGS", "JVMFLAGS"]


def test_with_overrides_replaces_lines_and_appends_the_rest():
    text = "# c\ndataDir=/data\n4lw.commands.whitelist=srvr\n"
    out = cenv.with_overrides(text, [("4lw.commands.whitelist", "*"), ("dataDir", "/data/coord"), ("a", "b")])
    assert out == "# c\ndataDir=/data/coord\n4lw.commands.whitelist=*\na=b\n"


# -- bitnami ---------------------------------------------------------------------------------------

def test_bitnami_compose_member():
    env = {"ALLOW_ANONYMOUS_LOGIN": "yes", "ZOO_SERVER_ID": "2",
           "ZOO_SERVERS": "zoo1:2888:3888,zoo2:2888:3888,zoo3:2888:3888"}
    p = plan(env)
    assert p.layout.flavor == BITNAMI and p.layout.data_dir == cenv.PurePosixPath("/bitnami/zookeeper/data")
    assert p.layout.data_log_dir is None
    assert lines(p) == [
        "tickTime=2000", "initLimit=10", "syncLimit=5", "preAllocSize=65536", "snapCount=100000",
        "dataDir=/bitnami/zookeeper/data", "clientPort=2181", "maxCnxns=0", "maxClientCnxns=60",
        "reconfigEnabled=false", "quorumListenOnAllIPs=false", "autopurge.purgeInterval=0",
        "autopurge.snapRetainCount=3", "4lw.commands.whitelist=srvr, mntr", "maxSessionTimeout=40000",
        "admin.serverAddress=127.0.0.1", "admin.serverPort=8080", "admin.enableServer=false",
        "server.1=zoo1:2888:3888;2181", "server.2=zoo2:2888:3888;2181", "server.3=zoo3:2888:3888;2181"]
    assert p.myid == "2"


def test_bitnami_variables_and_zoo_cfg_passthrough():
    env = {"ALLOW_EMPTY_PASSWORD": "true", "ZOO_PORT_NUMBER": "2281", "ZOO_LISTEN_ALLIPS_ENABLED": "yes",
           "ZOO_SERVERS": "a:2888:3888::5 b:2888:3888:observer::7", "ZOO_SERVER_ID": "5", "ZOO_CFG_forceSync": "no",
           "ZOO_CFG_tickTime": "1000", "ZOO_DATA_LOG_DIR": "/bitnami/zookeeper/log", "ZOO_LOG_LEVEL": "WARN",
           "ZOO_HEAP_SIZE": "512"}
    p = plan(env)
    ls = lines(p)
    assert "clientPort=2281" in ls and "quorumListenOnAllIPs=true" in ls
    assert "server.5=a:2888:3888;2281" in ls and "server.7=b:2888:3888:observer;2281" in ls
    assert ls[0] == "tickTime=1000" and ls[-1] == "forceSync=no"     # ZOO_CFG_* replace in place or append
    assert "dataLogDir=/bitnami/zookeeper/log" in ls
    assert p.log_level == "warning"
    assert any(n.startswith("ZOO_HEAP_SIZE") for n in p.notes)


def test_bitnami_single_server_is_standalone_and_myid_only_into_an_empty_data_dir():
    env = {"ALLOW_ANONYMOUS_LOGIN": "yes", "ZOO_SERVERS": "zoo1:2888:3888", "ZOO_SERVER_ID": "4"}
    assert not any(l.startswith("server.") for l in lines(plan(env)))
    assert plan(env).myid == "4"
    assert plan(env, Existing(data_dir_empty=False)).myid is None


def test_bitnami_prometheus_switch_writes_the_metrics_provider_keys():
    env = {"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_ENABLE_PROMETHEUS_METRICS": "yes",
           "ZOO_PROMETHEUS_METRICS_PORT_NUMBER": "7070"}
    try:
        p = plan(env)
    except EnvError as e:       # a coord whose zoo.cfg parser does not act on metricsProvider.className
        assert str(e).startswith("ZOO_ENABLE_PROMETHEUS_METRICS: ") and "not served by this coord yet" in str(e)
        return
    assert lines(p)[-3:] == [f"metricsProvider.className={cenv.PROMETHEUS}", "metricsProvider.httpPort=7070",
                             "metricsProvider.exportJvmInfo=true"]
    assert zoocfg.parse(p.zoo_cfg).metrics_port == 7070


def test_bitnami_refuses_to_start_without_anonymous_login_allowed():
    with pytest.raises(EnvError, match="^ALLOW_EMPTY_PASSWORD: .*ALLOW_ANONYMOUS_LOGIN=yes"):
        plan({"ZOO_SERVER_ID": "1"})


# -- cp-zookeeper ----------------------------------------------------------------------------------

def test_confluent_conduktor_member():
    env = {"ZOOKEEPER_CLIENT_PORT": "2182", "ZOOKEEPER_SERVER_ID": "2",
           "ZOOKEEPER_SERVERS": "zoo1:2888:3888;zoo2:2888:3888;zoo3:2888:3888"}
    p = plan(env)
    assert p.layout.flavor == CONFLUENT
    assert p.layout.data_dir == cenv.PurePosixPath("/var/lib/zookeeper/data")
    assert lines(p) == [
        "dataDir=/var/lib/zookeeper/data", "dataLogDir=/var/lib/zookeeper/log", "clientPort=2182",
        "initLimit=10", "syncLimit=5",
        "server.1=zoo1:2888:3888", "server.2=zoo2:2888:3888", "server.3=zoo3:2888:3888"]
    assert p.myid == "2"


def test_confluent_table_keys_and_kafka_opts():
    env = {"ZOOKEEPER_CLIENT_PORT": "2181", "ZOOKEEPER_TICK_TIME": "2000",
           "ZOOKEEPER_AUTOPURGE_PURGE_INTERVAL": "1", "ZOOKEEPER_AUTOPURGE_SNAP_RETAIN_COUNT": "4",
           "ZOOKEEPER_JUTE_MAX_BUFFER": "2097152", "ZOOKEEPER_MAX_CLIENT_CNXNS": "100",
           "ZOOKEEPER_MIN_SESSION_TIMEOUT": "4000", "ZOOKEEPER_MAX_SESSION_TIMEOUT": "40000",
           "ZOOKEEPER_LOG4J_ROOT_LOGLEVEL": "ERROR", "KAFKA_OPTS": "-Dzookeeper.4lw.commands.whitelist=*",
           "KAFKA_HEAP_OPTS": "-Xmx512M -Xms512M"}
    p = plan(env)
    assert lines(p)[2:] == ["clientPort=2181", "tickTime=2000", "maxClientCnxns=100", "minSessionTimeout=4000",
                            "maxSessionTimeout=40000", "autopurge.snapRetainCount=4", "autopurge.purgeInterval=1",
                            "jute.maxbuffer=2097152"]
    assert p.myid is None and p.log_level == "error"
    assert p.overrides == [("4lw.commands.whitelist", "*")]


def test_confluent_regenerates_only_its_own_file_and_rewrites_myid():
    env = {"ZOOKEEPER_CLIENT_PORT": "2181", "ZOOKEEPER_SERVER_ID": "1"}
    mine = plan(env).zoo_cfg
    assert plan(env, Existing(zoo_cfg=mine, myid=True)).zoo_cfg == mine
    assert plan(env, Existing(zoo_cfg=mine, myid=True)).myid == "1"
    assert plan(env, Existing(zoo_cfg="dataDir=/mine\n", myid=True)).zoo_cfg is None


@pytest.mark.parametrize("env, message", [
    ({"ZOOKEEPER_TICK_TIME": "2000"}, "^ZOOKEEPER_CLIENT_PORT: cp-zookeeper requires it"),
    ({"ZOOKEEPER_CLIENT_PORT": "2181", "ZOOKEEPER_SERVERS": "a:1:2;b:1:2"}, "^ZOOKEEPER_SERVER_ID: "),
    ({"ZOOKEEPER_CLIENT_PORT": "2181", "ZOOKEEPER_SERVER_ID": "1", "ZOOKEEPER_SERVERS": "a:1:2;"},
     "^ZOOKEEPER_SERVERS: entry 2 is empty"),
    ({"ZOOKEEPER_CLIENT_PORT": "2181", "ZOOKEEPER_GROUPS": "1:2:3"}, "^ZOOKEEPER_GROUPS: hierarchical"),
    ({"ZOOKEEPER_CLIENT_PORT": "2181", "ZOOKEEPER_FOO": "1"}, "^ZOOKEEPER_FOO: not a variable of confluentinc"),
    ({"ZOOKEEPER_CLIENT_PORT": "x"}, "^ZOOKEEPER_CLIENT_PORT: clientPort must be an integer"),
])
def test_confluent_refusals_name_the_variable(env, message):
    with pytest.raises(EnvError, match=message):
        plan(env)


# -- what stops the start, named -------------------------------------------------------------------

@pytest.mark.parametrize("env, message", [
    ({"ZOO_TICK_TIME": "soon"}, "^ZOO_TICK_TIME: tickTime must be an integer, got 'soon'"),
    ({"ZOO_TICK_TIME": ""}, "^ZOO_TICK_TIME: "),
    ({"ZOO_SERVERS": "server.1=a:1:2;3 zoo2:2888:3888"}, "^ZOO_SERVERS: 'zoo2:2888:3888' is not a whole"),
    ({"ZOO_SERVERS": "server.1=a:2888"}, "^ZOO_SERVERS: server.1 must be host:quorumPort:electionPort"),
    ({"ZOO_CFG_EXTRA": "forceSync"}, "^ZOO_CFG_EXTRA: 'forceSync' is not a key=value token"),
    ({"ZOO_CFG_EXTRA": "noSuchKey=1"}, "^ZOO_CFG_EXTRA: zoo.cfg key 'noSuchKey' is not one coord knows"),
    ({"ZOO_MY_ID": "two"}, "^ZOO_MY_ID: myid must be an integer"),
    ({"ZOO_MY_ID": "4", "ZOO_SERVERS": CANONICAL_SERVERS}, "^ZOO_MY_ID: server id 4 has no server.4 entry"),
    ({"ZOO_FOO": "1"}, "^ZOO_FOO: not a variable of the official zookeeper image"),
    ({"ZOO_MY_ID": "1", "ZOO_SERVER_ID": "1"}, "^ZOO_MY_ID .* is mixed with ZOO_SERVER_ID"),
    ({"ZOO_TICK_TIME": "1", "ZOOKEEPER_CLIENT_PORT": "2181"}, "^ZOO_TICK_TIME .* is mixed with ZOOKEEPER_CLIENT_PORT"),
    ({"ZOO_DATA_DIR": "data"}, "^ZOO_DATA_DIR: 'data' must be an absolute path"),
    ({"ZOO_DATA_DIR": ""}, "^ZOO_DATA_DIR: empty"),
    ({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_ENABLE_AUTH": "yes"}, "^ZOO_ENABLE_AUTH=yes: SASL"),
    ({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_TLS_CLIENT_ENABLE": "true"},
     "^ZOO_TLS_CLIENT_KEYSTORE_FILE: required with ZOO_TLS_CLIENT_ENABLE=true"),
    ({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_TLS_QUORUM_ENABLE": "yes", "ZOO_TLS_QUORUM_KEYSTORE_FILE": "/k.p12"},
     "^ZOO_TLS_QUORUM_TRUSTSTORE_FILE: required with ZOO_TLS_QUORUM_ENABLE=yes"),
    ({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_TLS_QUORUM_ENABLE": "yes", "ZOO_TLS_QUORUM_CLIENT_AUTH": "always",
      "ZOO_TLS_QUORUM_KEYSTORE_FILE": "/k.p12", "ZOO_TLS_QUORUM_TRUSTSTORE_FILE": "/t.p12"},
     "^ZOO_TLS_QUORUM_CLIENT_AUTH: 'always'; the allowed values are none, want, need"),
    ({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_SERVERS": "a:1:2 b:1"}, "^ZOO_SERVERS: 'b:1' should be host:port:port"),
    ({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_SERVERS": "a:1:2::1 b:1:2::1"}, "^ZOO_SERVERS: server ids repeat"),
    ({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_PEER_TYPE": "leader"}, "^ZOO_PEER_TYPE: 'leader'"),
    ({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_LOG_LEVEL": "LOUD"}, "^ZOO_LOG_LEVEL: 'LOUD' is not a log level"),
    ({"JVMFLAGS": "-Dzookeeper.noSuchProperty=1"}, "^-Dzookeeper.noSuchProperty: zoo.cfg key 'noSuchProperty'"),
])
def test_a_variable_coord_cannot_honour_stops_the_start_with_its_name(env, message):
    with pytest.raises(EnvError, match=message):
        plan(env)


@pytest.mark.parametrize("env", [
    {"ZOO_CFG_EXTRA": "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"},
    {"ZOO_CFG_EXTRA": "secureClientPort=2281"},
    {"ZOO_CFG_EXTRA": "sslQuorum=true"},
    {"ZOO_CFG_EXTRA": "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"},
    {"JVMFLAGS": "-Djava.security.auth.login.config=/conf/jaas.conf"},
    {"ZOOKEEPER_CLIENT_PORT": "2181", "ZOOKEEPER_SSL_QUORUM": "true"},
])
def test_a_feature_setting_is_never_silently_ignored(env):
    """TLS, SASL and metrics settings either stop the start naming the variable, or reach a zoo.cfg
    key that coord's parser acts on (as each feature lands, its setting passes by itself)."""
    try:
        p = plan(env)
    except EnvError as e:
        assert str(e).split(":")[0] in env and "not served by this coord yet" in str(e)
        return
    keys = dict(l.partition("=")[::2] for l in lines(p)) | dict(p.overrides)
    feature = [(k, v) for k, v in keys.items()
               if any(k == n or (n.endswith(".") and k.startswith(n)) for n, _ in cenv.FEATURE_KEYS)]
    assert feature and all(cenv._acted_on(k, v) for k, v in feature)


def test_kubernetes_service_links_are_not_read_as_cp_variables():
    # a Service named `zookeeper` injects these into every pod of the namespace
    links = {"ZOOKEEPER_PORT": "tcp://10.0.0.7:2181", "ZOOKEEPER_SERVICE_HOST": "10.0.0.7",
             "ZOOKEEPER_SERVICE_PORT": "2181", "ZOOKEEPER_PORT_2181_TCP": "tcp://10.0.0.7:2181",
             "ZOOKEEPER_PORT_2181_TCP_ADDR": "10.0.0.7", "ZOO_SERVICE_PORT_CLIENT": "2181"}
    p = plan({**links, "ZOO_MY_ID": "1"})
    assert p.layout.flavor == OFFICIAL and lines(p) == lines(plan({"ZOO_MY_ID": "1"}))


# -- ZOO_SERVERS in every form (hypothesis) ---------------------------------------------------------

hosts = st.text(string.ascii_lowercase + string.digits + "-.", min_size=1, max_size=20).filter(
    lambda h: h[0].isalnum())
ports = st.integers(1, 65535)
roles = st.sampled_from(["", ":participant", ":observer"])
members = st.lists(st.tuples(hosts, ports, ports, roles, ports), min_size=1, max_size=7)


@settings(max_examples=150, deadline=None)
@given(members, st.lists(st.sampled_from([" ", "  ", "\t", "\n"]), min_size=7, max_size=7))
def test_official_servers_tokens_are_written_verbatim(ms, seps):
    tokens = [f"server.{i}={h}:{q}:{e}{r};{c}" for i, (h, q, e, r, c) in enumerate(ms, 1)]
    value = seps[0] + "".join(t + seps[i % len(seps)] for i, t in enumerate(tokens))
    p = plan({"ZOO_SERVERS": value, "ZOO_MY_ID": "1"})
    assert [l for l in lines(p) if l.startswith("server.")] == tokens
    servers = zoocfg.parse(p.zoo_cfg).servers
    assert [(s.host, s.quorum_port, s.election_port, s.client_port) for s in servers.values()] == \
        [(h, q, e, c) for h, q, e, _, c in ms]


@settings(max_examples=150, deadline=None)
@given(members, st.lists(st.sampled_from([" ", ",", ";", ", ", " ; "]), min_size=7, max_size=7),
       st.booleans(), ports, st.randoms(use_true_random=False))
def test_bitnami_servers_any_separator_with_or_without_ids(ms, seps, explicit, client_port, rnd):
    ids = rnd.sample(range(1, 256), len(ms)) if explicit else list(range(1, len(ms) + 1))
    tokens = [f"{h}:{q}:{e}{r}" + (f"::{sid}" if explicit else "") for (h, q, e, r, _), sid in zip(ms, ids)]
    value = "".join(t + (seps[i % len(seps)] if i < len(tokens) - 1 else "") for i, t in enumerate(tokens))
    p = plan({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_SERVERS": value, "ZOO_PORT_NUMBER": str(client_port),
              "ZOO_SERVER_ID": str(ids[0])})
    got = [l for l in lines(p) if l.startswith("server.")]
    if len(ms) == 1:
        assert got == []        # one entry: standalone, as bitnami
        return
    assert got == [f"server.{sid}={h}:{q}:{e}{r};{client_port}" for (h, q, e, r, _), sid in zip(ms, ids)]
    cfg = zoocfg.parse(p.zoo_cfg)
    assert sorted(cfg.servers) == sorted(ids)
    assert {s.role for s in cfg.servers.values()} <= {"participant", "observer"}


@settings(max_examples=150, deadline=None)
@given(members, st.sampled_from([";", " ;", "; "]))
def test_confluent_servers_split_on_semicolons_numbered_from_one(ms, sep):
    entries = [f"{h}:{q}:{e}{r}" for h, q, e, r, _ in ms]
    p = plan({"ZOOKEEPER_CLIENT_PORT": "2181", "ZOOKEEPER_SERVER_ID": "1", "ZOOKEEPER_SERVERS": sep.join(entries)})
    assert [l for l in lines(p) if l.startswith("server.")] == [f"server.{i}={s}" for i, s in enumerate(entries, 1)]
    assert all(s.client_port is None for s in zoocfg.parse(p.zoo_cfg).servers.values())


def test_bitnami_tls_switches_write_the_keys_bitnami_writes():
    """ZOO_TLS_QUORUM_ENABLE / ZOO_TLS_CLIENT_ENABLE and their companions become the lines bitnami's
    zookeeper_generate_conf writes, in its order (after the servers, before ZOO_CFG_*), passwords only
    when set; coord's parser acts on every one of them (client.secure aside: a client property)."""
    env = {"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_SERVERS": "a:2888:3888,b:2888:3888,c:2888:3888",
           "ZOO_TLS_CLIENT_ENABLE": "yes", "ZOO_TLS_PORT_NUMBER": "3182", "ZOO_TLS_CLIENT_AUTH": "want",
           "ZOO_TLS_CLIENT_KEYSTORE_FILE": "/s/c.jks", "ZOO_TLS_CLIENT_KEYSTORE_PASSWORD": "pw1",
           "ZOO_TLS_CLIENT_TRUSTSTORE_FILE": "/s/ct.jks",
           "ZOO_TLS_QUORUM_ENABLE": "true", "ZOO_TLS_QUORUM_KEYSTORE_FILE": "/s/q.p12",
           "ZOO_TLS_QUORUM_KEYSTORE_PASSWORD": "pw2", "ZOO_TLS_QUORUM_TRUSTSTORE_FILE": "/s/qt.p12",
           "ZOO_TLS_QUORUM_TRUSTSTORE_PASSWORD": "pw3", "ZOO_TLS_QUORUM_KEYSTORE_TYPE": "PKCS12",
           "ZOO_CFG_sslQuorumReloadCertFiles": "true"}
    got = lines(plan(env))
    tail = got[got.index("server.3=c:2888:3888;2181") + 1:]
    assert tail == [
        "client.secure=true", "ssl.clientAuth=want", "secureClientPort=3182",
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        "ssl.keyStore.password=pw1", "ssl.keyStore.location=/s/c.jks", "ssl.trustStore.location=/s/ct.jks",
        "sslQuorum=true", "ssl.quorum.clientAuth=need", "ssl.quorum.keyStore.location=/s/q.p12",
        "ssl.quorum.keyStore.password=pw2", "ssl.quorum.trustStore.location=/s/qt.p12",
        "ssl.quorum.trustStore.password=pw3", "sslQuorumReloadCertFiles=true"]
    for line in tail:
        key, _, value = line.partition("=")
        if key != "client.secure":
            assert cenv._acted_on(key, value) or key in zoocfg.KNOWN_IGNORED, line
    off = lines(plan({"ALLOW_EMPTY_PASSWORD": "yes", "ZOO_TLS_QUORUM_ENABLE": "no",
                      "ZOO_TLS_QUORUM_KEYSTORE_FILE": "/s/q.p12"}))
    assert not any(l.startswith(("ssl", "sslQuorum", "serverCnxnFactory")) for l in off)
