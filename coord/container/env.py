"""The ZooKeeper Docker images' environment variables -> zoo.cfg and myid, as each image writes them.

An operator swaps the `image:` line of a compose file or manifest and keeps every variable, so three
contracts are read exactly (sources in shared/reference/zk-ops-ecosystem.md section 1):

- the official `zookeeper` image: ZOO_* keys written in a fixed order with the Dockerfile's defaults,
  each whitespace-separated ZOO_SERVERS token written verbatim as a `server.N=...;port` line, then
  4lw.commands.whitelist (only if set), then each ZOO_CFG_EXTRA token; zoo.cfg is written only when
  absent and myid (ZOO_MY_ID, else 1) only when absent;
- bitnami/zookeeper: ZOO_SERVERS as `host:p:p[:role][::id]` separated by spaces, commas or semicolons,
  ids numbered from 1 unless `::id` is given, `;ZOO_PORT_NUMBER` appended, a single entry meaning
  standalone; ZOO_CFG_<A>_<B> sets key A.B; zoo.cfg only when absent, myid only into an empty data
  dir; anonymous access must be allowed explicitly (ALLOW_EMPTY_PASSWORD, or ALLOW_ANONYMOUS_LOGIN);
- confluentinc/cp-zookeeper: ZOOKEEPER_* through cp's fixed key table, ZOOKEEPER_SERVERS split on `;`
  into server.1..N, ZOOKEEPER_CLIENT_PORT required, ZOOKEEPER_SERVER_ID required with servers and
  rewritten to myid on every start; the config is regenerated on every start (only a file this module
  wrote: one an operator mounted is never replaced).

Which contract applies is read from the variables (each image has its own); mixing two stops the
start. A variable coord cannot honour (TLS, SASL, Prometheus, unknown names and keys) stops the start
with its name: a server that silently dropped, say, its TLS settings would be worse than one that
does not start. JVM options have no JVM to act on: `-Dzookeeper.<key>=<value>` becomes the zoo.cfg
key (that is how cp users set the 4lw whitelist), the rest is reported and has no effect.

Pure: the environment and facts about existing files come in, file texts come out (`plan`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Mapping

from coord.aio import zoocfg

OFFICIAL, BITNAMI, CONFLUENT = "zookeeper", "bitnami", "confluent"
IMAGE_NAMES = {OFFICIAL: "the official zookeeper image", BITNAMI: "bitnami/zookeeper",
               CONFLUENT: "confluentinc/cp-zookeeper"}
MARK = "# Written by `coord container-entrypoint` from the environment (docs/docker.md)."


class EnvError(Exception):
    """A variable coord cannot honour, or a value its image would refuse; the message names it."""


# Paths any contract may override (ZOO_DATA_DIR and ZOO_CONF_DIR are fixed in the bitnami and cp
# images; here they move every layout, which is what tests and unusual mounts need).
PATH_VARS = ("ZOO_CONF_DIR", "ZOO_DATA_DIR", "ZOO_DATA_LOG_DIR", "ZOO_LOG_DIR")

# (variable, zoo.cfg key, the Dockerfile's default), in the order the official entrypoint writes them.
OFFICIAL_KEYS = (
    ("ZOO_DATA_DIR", "dataDir", "/data"),
    ("ZOO_DATA_LOG_DIR", "dataLogDir", "/datalog"),
    ("ZOO_TICK_TIME", "tickTime", "2000"),
    ("ZOO_INIT_LIMIT", "initLimit", "5"),
    ("ZOO_SYNC_LIMIT", "syncLimit", "2"),
    ("ZOO_AUTOPURGE_SNAPRETAINCOUNT", "autopurge.snapRetainCount", "3"),
    ("ZOO_AUTOPURGE_PURGEINTERVAL", "autopurge.purgeInterval", "0"),
    ("ZOO_MAX_CLIENT_CNXNS", "maxClientCnxns", "60"),
    ("ZOO_STANDALONE_ENABLED", "standaloneEnabled", "true"),
    ("ZOO_ADMINSERVER_ENABLED", "admin.enableServer", "true"),
)
OFFICIAL_DEFAULT_SERVERS = "server.1=localhost:2888:3888;2181"
OFFICIAL_ONLY = {v for v, _, _ in OFFICIAL_KEYS} - set(PATH_VARS) - {
    "ZOO_TICK_TIME", "ZOO_INIT_LIMIT", "ZOO_SYNC_LIMIT", "ZOO_MAX_CLIENT_CNXNS"} | {
    "ZOO_MY_ID", "ZOO_CFG_EXTRA", "ZOO_LOG4J_PROP"}
SHARED_ZOO = {"ZOO_TICK_TIME", "ZOO_INIT_LIMIT", "ZOO_SYNC_LIMIT", "ZOO_MAX_CLIENT_CNXNS",
              "ZOO_4LW_COMMANDS_WHITELIST", "ZOO_SERVERS", *PATH_VARS}

# bitnami: (variable, key, default, kind) in the order zookeeper_generate_conf sets them; kind "bool"
# turns yes/no into true/false as the image does.
BITNAMI_KEYS = (
    ("ZOO_TICK_TIME", "tickTime", "2000", ""),
    ("ZOO_INIT_LIMIT", "initLimit", "10", ""),
    ("ZOO_SYNC_LIMIT", "syncLimit", "5", ""),
    ("ZOO_PRE_ALLOC_SIZE", "preAllocSize", "65536", ""),
    ("ZOO_SNAPCOUNT", "snapCount", "100000", ""),
    ("ZOO_DATA_DIR", "dataDir", None, "path"),
    ("ZOO_DATA_LOG_DIR", "dataLogDir", "", "optional"),
    ("ZOO_PORT_NUMBER", "clientPort", "2181", ""),
    ("ZOO_MAX_CNXNS", "maxCnxns", "0", ""),
    ("ZOO_MAX_CLIENT_CNXNS", "maxClientCnxns", "60", ""),
    ("ZOO_RECONFIG_ENABLED", "reconfigEnabled", "no", "bool"),
    ("ZOO_LISTEN_ALLIPS_ENABLED", "quorumListenOnAllIPs", "no", "bool"),
    ("ZOO_AUTOPURGE_INTERVAL", "autopurge.purgeInterval", "0", ""),
    ("ZOO_AUTOPURGE_RETAIN_COUNT", "autopurge.snapRetainCount", "3", ""),
    ("ZOO_4LW_COMMANDS_WHITELIST", "4lw.commands.whitelist", "srvr, mntr", ""),
    ("ZOO_MAX_SESSION_TIMEOUT", "maxSessionTimeout", "40000", ""),
    ("ZOO_ADMIN_SERVER_ADDRESS", "admin.serverAddress", "127.0.0.1", ""),
    ("ZOO_ADMIN_SERVER_PORT_NUMBER", "admin.serverPort", "8080", ""),
    ("ZOO_ENABLE_ADMIN_SERVER", "admin.enableServer", "no", "bool"),
)
# bitnami switches this entrypoint does not translate (bitnami generates JAAS files and keystore
# settings from them): "yes" stops the start. The zoo.cfg keys themselves, in a mounted zoo.cfg, work
# where coord serves the feature (docs/security.md).
_NOT_TRANSLATED = "is not translated by coord's entrypoint; set the zoo.cfg keys in a mounted zoo.cfg"
BITNAMI_UNSUPPORTED = {
    "ZOO_ENABLE_AUTH": f"SASL client authentication {_NOT_TRANSLATED}",
    "ZOO_ENABLE_QUORUM_AUTH": f"SASL quorum authentication {_NOT_TRANSLATED}",
}
NETTY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
# bitnami's TLS switches, as zookeeper_generate_conf writes them (after the servers, before ZOO_CFG_*):
# (switch, [(key, value or variable, kind)]) with kind "const" (the value itself), "var" (required:
# bitnami's zookeeper_conf_set fails on an empty value), "auth" (none/want/need, default need, checked
# by zookeeper_validate) or "if set" (written only when not empty: the passwords).
BITNAMI_TLS = (
    ("ZOO_TLS_CLIENT_ENABLE", (
        ("client.secure", "true", "const"),
        ("ssl.clientAuth", "ZOO_TLS_CLIENT_AUTH", "auth"),
        ("secureClientPort", "ZOO_TLS_PORT_NUMBER", "port"),
        ("serverCnxnFactory", NETTY, "const"),
        ("ssl.keyStore.password", "ZOO_TLS_CLIENT_KEYSTORE_PASSWORD", "if set"),
        ("ssl.keyStore.location", "ZOO_TLS_CLIENT_KEYSTORE_FILE", "var"),
        ("ssl.trustStore.password", "ZOO_TLS_CLIENT_TRUSTSTORE_PASSWORD", "if set"),
        ("ssl.trustStore.location", "ZOO_TLS_CLIENT_TRUSTSTORE_FILE", "var"))),
    ("ZOO_TLS_QUORUM_ENABLE", (
        ("sslQuorum", "true", "const"),
        ("ssl.quorum.clientAuth", "ZOO_TLS_QUORUM_CLIENT_AUTH", "auth"),
        ("serverCnxnFactory", NETTY, "const"),
        ("ssl.quorum.keyStore.location", "ZOO_TLS_QUORUM_KEYSTORE_FILE", "var"),
        ("ssl.quorum.keyStore.password", "ZOO_TLS_QUORUM_KEYSTORE_PASSWORD", "if set"),
        ("ssl.quorum.trustStore.location", "ZOO_TLS_QUORUM_TRUSTSTORE_FILE", "var"),
        ("ssl.quorum.trustStore.password", "ZOO_TLS_QUORUM_TRUSTSTORE_PASSWORD", "if set"))),
)
PROMETHEUS = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
# Accepted with no effect on coord: the JVM, logging, health-check timing, credentials that only
# matter once the switches above are on.
BITNAMI_INERT = {
    "ZOO_HEAP_SIZE", "ZOO_LOG_LEVEL", "ZOO_HC_TIMEOUT", "ZOO_FIPS_MODE",
    # the *_TYPE variables: bitnami's scripts write no key for them (the store type is then read
    # from the file name, as ZooKeeper does)
    "ZOO_TLS_CLIENT_KEYSTORE_TYPE", "ZOO_TLS_CLIENT_TRUSTSTORE_TYPE",
    "ZOO_TLS_QUORUM_KEYSTORE_TYPE", "ZOO_TLS_QUORUM_TRUSTSTORE_TYPE",
    "ZOO_CLIENT_USER", "ZOO_SERVER_USERS", "ZOO_CLIENT_PASSWORD", "ZOO_SERVER_PASSWORDS",
    "ZOO_QUORUM_LEARNER_USER", "ZOO_QUORUM_LEARNER_PASSWORD", "ZOO_QUORUM_SERVER_USERS",
    "ZOO_QUORUM_SERVER_PASSWORDS",
}
BITNAMI_ONLY = ({v for v, _, _, _ in BITNAMI_KEYS} | set(BITNAMI_UNSUPPORTED) | BITNAMI_INERT
                | {sw for sw, _ in BITNAMI_TLS} | {"ZOO_TLS_PORT_NUMBER"}
                | {v for _, keys in BITNAMI_TLS for _, v, kind in keys if kind != "const"}
                | {"ZOO_SERVER_ID", "ZOO_PEER_TYPE", "ALLOW_EMPTY_PASSWORD", "ALLOW_ANONYMOUS_LOGIN",
                   "ZOO_ENABLE_PROMETHEUS_METRICS", "ZOO_PROMETHEUS_METRICS_PORT_NUMBER"}) - SHARED_ZOO
_BITNAMI_SERVER = re.compile(r"^\S+:\d+:\d+(:observer|:participant)?$")
_BITNAMI_SERVER_ID = re.compile(r"^\S+:\d+:\d+(:observer|:participant)?::\d+$")

# cp-zookeeper's zookeeper.properties.template table, in its order (set if the variable is set).
CONFLUENT_KEYS = (
    ("ZOOKEEPER_CLIENT_PORT", "clientPort"),
    ("ZOOKEEPER_TICK_TIME", "tickTime"),
    ("ZOOKEEPER_GLOBAL_OUTSTANDING_LIMIT", "globalOutstandingLimit"),
    ("ZOOKEEPER_PRE_ALLOC_SIZE", "preAllocSize"),
    ("ZOOKEEPER_SNAP_COUNT", "snapCount"),
    ("ZOOKEEPER_TRACE_FILE", "traceFile"),
    ("ZOOKEEPER_MAX_CLIENT_CNXNS", "maxClientCnxns"),
    ("ZOOKEEPER_CLIENT_PORT_ADDRESS", "clientPortAddress"),
    ("ZOOKEEPER_MIN_SESSION_TIMEOUT", "minSessionTimeout"),
    ("ZOOKEEPER_MAX_SESSION_TIMEOUT", "maxSessionTimeout"),
    ("ZOOKEEPER_FSYNC_WARNING_THRESHOLDMS", "fsync.warningthresholdms"),
    ("ZOOKEEPER_AUTOPURGE_SNAP_RETAIN_COUNT", "autopurge.snapRetainCount"),
    ("ZOOKEEPER_AUTOPURGE_PURGE_INTERVAL", "autopurge.purgeInterval"),
    ("ZOOKEEPER_SYNC_ENABLED", "syncEnabled"),
    ("ZOOKEEPER_ELECTION_ALG", "electionAlg"),
    ("ZOOKEEPER_INIT_LIMIT", "initLimit"),
    ("ZOOKEEPER_LEADER_SERVES", "leaderServes"),
    ("ZOOKEEPER_SYNC_LIMIT", "syncLimit"),
    ("ZOOKEEPER_CNX_TIMEOUT", "cnxTimeout"),
    ("ZOOKEEPER_FORCE_SYNC", "forceSync"),
    ("ZOOKEEPER_JUTE_MAX_BUFFER", "jute.maxbuffer"),
    ("ZOOKEEPER_SKIP_ACL", "skipACL"),
    ("ZOOKEEPER_QUORUM_LISTEN_ON_ALL_IPS", "quorumListenOnAllIPs"),
    ("ZOOKEEPER_CLIENT_CNXN_SOCKET", "clientCnxnSocket"),
    ("ZOOKEEPER_SECURE_CLIENT_PORT", "secureClientPort"),
    ("ZOOKEEPER_SERVER_CNXN_SOCKET", "serverCnxnSocket"),
    ("ZOOKEEPER_TCP_KEEP_ALIVE", "tcpKeepAlive"),
    ("ZOOKEEPER_X509_AUTHENTICATION_PROVIDER_SUPER_USER", "X509AuthenticationProvider.superUser"),
    ("ZOOKEEPER_SSL_AUTH_PROVIDER", "ssl.authProvider"),
    ("ZOOKEEPER_SSL_CLIENT_AUTH", "ssl.clientAuth"),
    ("ZOOKEEPER_SSL_KEYSTORE_LOCATION", "ssl.keyStore.location"),
    ("ZOOKEEPER_SSL_KEYSTORE_PASSWORD", "ssl.keyStore.password"),
    ("ZOOKEEPER_SSL_KEYSTORE_TYPE", "ssl.keyStore.type"),
    ("ZOOKEEPER_SSL_TRUSTSTORE_LOCATION", "ssl.trustStore.location"),
    ("ZOOKEEPER_SSL_TRUSTSTORE_PASSWORD", "ssl.trustStore.password"),
    ("ZOOKEEPER_SSL_TRUSTSTORE_TYPE", "ssl.trustStore.type"),
    ("ZOOKEEPER_SSL_ENABLED_PROTOCOLS", "ssl.enabledProtocols"),
    ("ZOOKEEPER_SSL_CONTEXT_SUPPLIER_CLASS", "ssl.context.supplier.class"),
    ("ZOOKEEPER_SSL_CIPHER_SUITES", "ssl.ciphersuites"),
    ("ZOOKEEPER_SSL_HOSTNAME_VERIFICATION", "ssl.hostnameVerification"),
    ("ZOOKEEPER_SSL_CRL", "ssl.crl"),
    ("ZOOKEEPER_SSL_OCPS", "ssl.ocsp"),
    ("ZOOKEEPER_SSL_HANDSHAKE_DETECTION_TIMEOUT_MILLIS", "ssl.handshakeDetectionTimeoutMillis"),
    ("ZOOKEEPER_SSL_QUORUM", "sslQuorum"),
    ("ZOOKEEPER_SSL_QUORUM_CLIENT_AUTH", "ssl.quorum.clientAuth"),
    ("ZOOKEEPER_SSL_QUORUM_KEYSTORE_LOCATION", "ssl.quorum.keyStore.location"),
    ("ZOOKEEPER_SSL_QUORUM_KEYSTORE_PASSWORD", "ssl.quorum.keyStore.password"),
    ("ZOOKEEPER_SSL_QUORUM_KEYSTORE_TYPE", "ssl.quorum.keyStore.type"),
    ("ZOOKEEPER_SSL_QUORUM_TRUSTSTORE_LOCATION", "ssl.quorum.trustStore.location"),
    ("ZOOKEEPER_SSL_QUORUM_TRUSTSTORE_PASSWORD", "ssl.quorum.trustStore.password"),
    ("ZOOKEEPER_SSL_QUORUM_TRUSTSTORE_TYPE", "ssl.quorum.trustStore.type"),
    ("ZOOKEEPER_SSL_QUORUM_ENABLED_PROTOCOLS", "ssl.quorum.enabledProtocols"),
    ("ZOOKEEPER_SSL_QUORUM_CIPHER_SUITES", "ssl.quorum.ciphersuites"),
    ("ZOOKEEPER_SSL_QUORUM_CONTEXT_SUPPLIER_CLASS", "ssl.quorum.context.supplier.class"),
    ("ZOOKEEPER_SSL_QUORUM_HOSTNAME_VERIFICATION", "ssl.quorum.hostnameVerification"),
    ("ZOOKEEPER_SSL_QUORUM_CRL", "ssl.quorum.crl"),
    ("ZOOKEEPER_SSL_QUORUM_OCPS", "ssl.quorum.ocsp"),
    ("ZOOKEEPER_SSL_QUORUM_HANDSHAKE_DETECTION_TIMEOUT_MILLIS", "ssl.quorum.handshakeDetectionTimeoutMillis"),
    ("ZOOKEEPER_SERVER_CNXN_FACTORY", "serverCnxnFactory"),
    ("ZOOKEEPER_AUTH_PROVIDER_X509", "authProvider.x509"),
    ("ZOOKEEPER_AUTH_PROVIDER_SASL", "authProvider.sasl"),
    ("ZOOKEEPER_CLIENT_PORT_UNIFICATION", "client.portUnification"),
    ("ZOOKEEPER_ADMIN_ENABLE_SERVER", "admin.enableServer"),
    ("ZOOKEEPER_ADMIN_SERVER_ADDRESS", "admin.serverAddress"),
    ("ZOOKEEPER_ADMIN_SERVER_PORT", "admin.serverPort"),
    ("ZOOKEEPER_ADMIN_IDLE_TIMEOUT", "admin.idleTimeout"),
    ("ZOOKEEPER_ADMIN_COMMAND_URL", "admin.commandURL"),
)
CONFLUENT_DATA_DIR = "/var/lib/zookeeper/data"
CONFLUENT_LOG_DIR = "/var/lib/zookeeper/log"
CONFLUENT_INERT = {"ZOOKEEPER_LOG4J_ROOT_LOGLEVEL", "ZOOKEEPER_LOG4J_LOGGERS", "ZOOKEEPER_TOOLS_LOG4J_LOGLEVEL"}
CONFLUENT_OTHER = {"ZOOKEEPER_SERVERS", "ZOOKEEPER_SERVER_ID", "ZOOKEEPER_GROUPS", "ZOOKEEPER_WEIGHTS"}

# JVM option variables each image passes to its JVM.
JVM_VARS = {OFFICIAL: ("JVMFLAGS", "SERVER_JVMFLAGS"), BITNAMI: ("JVMFLAGS",),
            CONFLUENT: ("KAFKA_OPTS", "KAFKA_HEAP_OPTS", "KAFKA_JMX_OPTS", "KAFKA_LOG4J_OPTS")}
CONFLUENT_JVM_INERT = ("KAFKA_JMX_PORT", "KAFKA_JMX_HOSTNAME")

LOG_LEVELS = {"TRACE": "debug", "DEBUG": "debug", "INFO": "info", "WARN": "warning", "WARNING": "warning",
              "ERROR": "error", "FATAL": "critical", "OFF": "critical"}
_YES = ("yes", "true", "1")

# Kubernetes injects <SERVICE>_SERVICE_HOST, <SERVICE>_PORT=tcp://... and friends for every Service in
# the namespace: a Service called `zookeeper` must not look like cp-zookeeper's variables.
_SERVICE_LINK = re.compile(
    r"^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$")


def _is_service_link(name: str, value: str) -> bool:
    if _SERVICE_LINK.match(name):
        return True
    return name.endswith("_PORT") and value.startswith(("tcp://", "udp://", "sctp://"))


def relevant(env: Mapping[str, str]) -> dict[str, str]:
    """The variables any of the three images reads (minus Kubernetes service links)."""
    names = {"ALLOW_EMPTY_PASSWORD", "ALLOW_ANONYMOUS_LOGIN", *CONFLUENT_JVM_INERT}
    for vs in JVM_VARS.values():
        names.update(vs)
    return {k: v for k, v in env.items()
            if (k.startswith(("ZOO_", "ZOOKEEPER_")) or k in names) and not _is_service_link(k, v)}


def flavor_of(env: Mapping[str, str]) -> str:
    env = relevant(env)
    cp = sorted(k for k in env if k.startswith("ZOOKEEPER_"))
    zoo = sorted(k for k in env if (k.startswith("ZOO_") and k not in PATH_VARS) or k.startswith("ALLOW_"))
    if cp and zoo:
        raise EnvError(f"{zoo[0]} ({IMAGE_NAMES[OFFICIAL]} or {IMAGE_NAMES[BITNAMI]}) is mixed with {cp[0]} "
                       f"({IMAGE_NAMES[CONFLUENT]}): use one image's variables")
    if cp:
        return CONFLUENT
    servers = env.get("ZOO_SERVERS", "").split()
    official = sorted(k for k in env if k in OFFICIAL_ONLY)
    bitnami = sorted(k for k in env if k in BITNAMI_ONLY or (k.startswith("ZOO_CFG_") and k != "ZOO_CFG_EXTRA"))
    if servers and re.match(r"server\.\d+=", servers[0]):    # a host may be called server.example
        official.append("ZOO_SERVERS")
    elif servers:
        bitnami.append("ZOO_SERVERS")
    if official and bitnami:
        raise EnvError(f"{official[0]} ({IMAGE_NAMES[OFFICIAL]}) is mixed with {bitnami[0]} "
                       f"({IMAGE_NAMES[BITNAMI]}): use one image's variables")
    return BITNAMI if bitnami else OFFICIAL


@dataclass(frozen=True)
class Layout:
    """Where the contract puts things: the config file, and the dirs myid and the data live in."""
    flavor: str
    conf_file: PurePosixPath
    data_dir: PurePosixPath
    data_log_dir: PurePosixPath | None


def _path(env: Mapping[str, str], var: str, default: str | None) -> str | None:
    v = env.get(var, default)
    if v is not None and v == "" and default:
        raise EnvError(f"{var}: empty; it must name a directory (default {default})")
    return v or None


def layout(env: Mapping[str, str]) -> Layout:
    env = relevant(env)
    fl = flavor_of(env)
    conf = PurePosixPath(_path(env, "ZOO_CONF_DIR", "/conf")) / "zoo.cfg"
    if fl == OFFICIAL:
        data, log = _path(env, "ZOO_DATA_DIR", "/data"), _path(env, "ZOO_DATA_LOG_DIR", "/datalog")
    elif fl == BITNAMI:
        data, log = _path(env, "ZOO_DATA_DIR", "/bitnami/zookeeper/data"), _path(env, "ZOO_DATA_LOG_DIR", "")
    else:
        data, log = _path(env, "ZOO_DATA_DIR", CONFLUENT_DATA_DIR), _path(env, "ZOO_DATA_LOG_DIR", CONFLUENT_LOG_DIR)
    for var, p in (("ZOO_DATA_DIR", data), ("ZOO_DATA_LOG_DIR", log), ("ZOO_CONF_DIR", str(conf))):
        if p is not None and not p.startswith("/"):
            raise EnvError(f"{var}: {p!r} must be an absolute path")
    return Layout(fl, conf, PurePosixPath(data), PurePosixPath(log) if log else None)


@dataclass(frozen=True)
class Existing:
    """What is already on disk, as far as the contracts care."""
    zoo_cfg: str | None = None     # the text of the config file, if there is one
    myid: bool = False             # <data dir>/myid exists
    data_dir_empty: bool = True    # bitnami writes myid only into an empty data dir


@dataclass
class Plan:
    layout: Layout
    zoo_cfg: str | None            # write this to layout.conf_file; None: keep the file that is there
    myid: str | None               # write this to <data dir>/myid; None: leave myid alone
    overrides: list[tuple[str, str]] = field(default_factory=list)  # zoo.cfg keys from -Dzookeeper.* options
    notes: list[str] = field(default_factory=list)                  # accepted, no effect on coord
    log_level: str | None = None                                   # for `coord serve --log-level`


Line = tuple  # (key, value, variable it came from)


def plan(env: Mapping[str, str], existing: Existing = Existing()) -> Plan:
    """What to write before `coord serve` starts; raises EnvError naming the variable at fault."""
    env = relevant(env)
    lay = layout(env)
    p = Plan(lay, None, None)
    if lay.flavor == OFFICIAL:
        lines, myid = _official(env, existing, p)
    elif lay.flavor == BITNAMI:
        lines, myid = _bitnami(env, existing, p)
    else:
        lines, myid = _confluent(env, existing, p)
    for var in JVM_VARS[lay.flavor]:
        if env.get(var, "").strip():
            p.overrides.extend(_jvm_options(var, env[var], p.notes))
    _check(lines + [(k, v, "-Dzookeeper." + k) for k, v in p.overrides])
    keep = existing.zoo_cfg is not None and not (lay.flavor == CONFLUENT and existing.zoo_cfg.startswith(MARK))
    _check_myid(lines if not keep else [], myid, lay.flavor)
    p.myid = myid
    if keep:
        p.notes.append(f"{lay.conf_file} exists: kept as it is (the environment's zoo.cfg settings are not applied)")
    else:
        p.zoo_cfg = render(lines)
    return p


def render(lines: list[Line]) -> str:
    return MARK + "\n" + "".join(f"{k}={v}\n" for k, v, _ in lines)


def _official(env, existing: Existing, p: Plan):
    lines: list[Line] = [(key, env.get(var, default), var) for var, key, default in OFFICIAL_KEYS]
    for tok in (env.get("ZOO_SERVERS") or OFFICIAL_DEFAULT_SERVERS).split():
        key, eq, value = tok.partition("=")
        if not eq or not re.fullmatch(r"server\.\d+", key):
            raise EnvError(f"ZOO_SERVERS: {tok!r} is not a whole server.N=host:port:port[:role][;[host:]port] "
                           "token (the official image writes each space-separated token as a zoo.cfg line)")
        lines.append((key, value, "ZOO_SERVERS"))
    if env.get("ZOO_4LW_COMMANDS_WHITELIST"):
        lines.append(("4lw.commands.whitelist", env["ZOO_4LW_COMMANDS_WHITELIST"], "ZOO_4LW_COMMANDS_WHITELIST"))
    for tok in env.get("ZOO_CFG_EXTRA", "").split():
        key, eq, value = tok.partition("=")
        if not eq or not key:
            raise EnvError(f"ZOO_CFG_EXTRA: {tok!r} is not a key=value token")
        lines.append((key, value, "ZOO_CFG_EXTRA"))
    for var in sorted(env):
        if var.startswith("ZOO_") and var not in OFFICIAL_ONLY | SHARED_ZOO:
            raise EnvError(f"{var}: not a variable of {IMAGE_NAMES[OFFICIAL]}; coord does not know what to do with it")
    if env.get("ZOO_LOG4J_PROP"):
        p.notes.append("ZOO_LOG4J_PROP: log4j settings have no effect on coord")
    if "ZOO_LOG_DIR" in env:
        p.notes.append("ZOO_LOG_DIR: coord logs to standard error (docker logs), not to files")
    myid = None if existing.myid else (env.get("ZOO_MY_ID") or "1")
    return lines, myid


def _yes(v: str | None) -> bool:
    return (v or "").strip().lower() in _YES


def _set(lines: list[Line], key: str, value: str, var: str) -> None:
    """bitnami's zookeeper_conf_set: replace the key's line if there is one, else append."""
    for i, (k, _, _) in enumerate(lines):
        if k == key:
            lines[i] = (key, value, var)
            return
    lines.append((key, value, var))


def bitnami_servers(value: str, client_port: str) -> list[tuple[int, str]]:
    """ZOO_SERVERS the bitnami way: (id, server line value); [] for a single entry (standalone)."""
    tokens = [t for t in re.split(r"[;,\s]+", value.strip()) if t]
    if len(tokens) <= 1:
        return []
    explicit = "::" in value
    out = []
    for i, tok in enumerate(tokens, 1):
        if explicit:
            if not _BITNAMI_SERVER_ID.match(tok):
                raise EnvError(f"ZOO_SERVERS: {tok!r} should be host:port:port[:role]::id, e.g. zookeeper:2888:3888::1")
            addr, _, sid = tok.partition("::")
            out.append((int(sid), f"{addr};{client_port}"))
        else:
            if not _BITNAMI_SERVER.match(tok):
                raise EnvError(f"ZOO_SERVERS: {tok!r} should be host:port:port[:role], e.g. zookeeper:2888:3888")
            out.append((i, f"{tok};{client_port}"))
    ids = [s for s, _ in out]
    if len(set(ids)) != len(ids):
        raise EnvError(f"ZOO_SERVERS: server ids repeat ({', '.join(map(str, ids))})")
    return out


def _bitnami_tls_value(env, switch: str, value: str, kind: str) -> str:
    """One TLS line's value as bitnami's zookeeper_generate_conf writes it (EnvError where its
    validation or zookeeper_conf_set would stop the container)."""
    if kind == "const":
        return value
    v = env.get(value, "")
    if kind == "auth":
        v = v or "need"
        if v not in ("none", "want", "need"):
            raise EnvError(f"{value}: {v!r}; the allowed values are none, want, need")
    elif kind == "port":
        v = v or "3181"
    elif kind == "var" and not v:
        raise EnvError(f"{value}: required with {switch}={env[switch]} (the key or trust store's path)")
    return v


def _bitnami(env, existing: Existing, p: Plan):
    for var, why in BITNAMI_UNSUPPORTED.items():
        if _yes(env.get(var)):
            raise EnvError(f"{var}={env[var]}: {why} (docs/docker.md)")
    if not (_yes(env.get("ALLOW_EMPTY_PASSWORD")) or _yes(env.get("ALLOW_ANONYMOUS_LOGIN"))):
        raise EnvError("ALLOW_EMPTY_PASSWORD: bitnami/zookeeper starts without authentication only with "
                       "ALLOW_EMPTY_PASSWORD=yes (ALLOW_ANONYMOUS_LOGIN=yes in older images); coord keeps that rule")
    lines: list[Line] = []
    for var, key, default, kind in BITNAMI_KEYS:
        if kind == "path":
            value = str(p.layout.data_dir)
        else:
            value = env.get(var) or default
        if kind == "optional" and not value:
            continue
        if kind == "bool":
            value = "true" if _yes(value) else "false"
        _set(lines, key, value, var)
    port = env.get("ZOO_PORT_NUMBER") or "2181"
    for sid, spec in bitnami_servers(env.get("ZOO_SERVERS", ""), port):
        _set(lines, f"server.{sid}", spec, "ZOO_SERVERS")
    for switch, keys in BITNAMI_TLS:
        if _yes(env.get(switch)):
            for key, value, kind in keys:
                v = _bitnami_tls_value(env, switch, value, kind)
                if v or kind != "if set":
                    _set(lines, key, v, switch)
    for var in sorted(env):  # bash expands ${!ZOO_CFG_@} in sorted order
        if var.startswith("ZOO_CFG_") and var != "ZOO_CFG_EXTRA":
            _set(lines, var[len("ZOO_CFG_"):].replace("_", "."), env[var], var)
    if _yes(env.get("ZOO_ENABLE_PROMETHEUS_METRICS")):   # bitnami's zookeeper_enable_prometheus_metrics
        port = env.get("ZOO_PROMETHEUS_METRICS_PORT_NUMBER") or "7000"
        _set(lines, "metricsProvider.className", PROMETHEUS, "ZOO_ENABLE_PROMETHEUS_METRICS")
        _set(lines, "metricsProvider.httpPort", port, "ZOO_PROMETHEUS_METRICS_PORT_NUMBER")
        _set(lines, "metricsProvider.exportJvmInfo", "true", "ZOO_ENABLE_PROMETHEUS_METRICS")
    if env.get("ZOO_PEER_TYPE"):
        if env["ZOO_PEER_TYPE"] not in ("observer", "participant"):
            raise EnvError(f"ZOO_PEER_TYPE: {env['ZOO_PEER_TYPE']!r} should be observer or participant")
        _set(lines, "peerType", env["ZOO_PEER_TYPE"], "ZOO_PEER_TYPE")
    for var in sorted(env):
        if (var.startswith("ZOO_") and not var.startswith("ZOO_CFG_") and var != "ZOO_CFG_EXTRA"
                and var not in BITNAMI_ONLY | SHARED_ZOO):
            raise EnvError(f"{var}: not a variable of {IMAGE_NAMES[BITNAMI]}; coord does not know what to do with it")
        if var in BITNAMI_INERT and var != "ZOO_LOG_LEVEL":
            p.notes.append(f"{var}: no effect on coord (JVM, health-check or disabled-feature setting)")
    if env.get("ZOO_LOG_LEVEL"):
        p.log_level = _log_level("ZOO_LOG_LEVEL", env["ZOO_LOG_LEVEL"])
    myid = (env.get("ZOO_SERVER_ID") or "1") if existing.data_dir_empty else None
    return lines, myid


def _confluent(env, existing: Existing, p: Plan):
    known = {v for v, _ in CONFLUENT_KEYS} | CONFLUENT_INERT | CONFLUENT_OTHER
    for var in sorted(env):
        if var.startswith("ZOOKEEPER_") and var not in known:
            raise EnvError(f"{var}: not a variable of {IMAGE_NAMES[CONFLUENT]}; coord does not know what to do with it")
    for var in ("ZOOKEEPER_GROUPS", "ZOOKEEPER_WEIGHTS"):
        if env.get(var):
            raise EnvError(f"{var}: hierarchical quorums (group.N/weight.N) are not supported by coord")
    env = dict(env)
    if not env.get("ZOOKEEPER_CLIENT_PORT"):
        if env.get("ZOOKEEPER_SECURE_CLIENT_PORT"):
            raise EnvError("ZOOKEEPER_SECURE_CLIENT_PORT: TLS on the client port is not served by coord yet")
        raise EnvError("ZOOKEEPER_CLIENT_PORT: cp-zookeeper requires it (or ZOOKEEPER_SECURE_CLIENT_PORT)")
    if env.get("ZOOKEEPER_SERVERS"):
        if not env.get("ZOOKEEPER_SERVER_ID"):
            raise EnvError("ZOOKEEPER_SERVER_ID: cp-zookeeper requires it when ZOOKEEPER_SERVERS is set")
        env["ZOOKEEPER_INIT_LIMIT"] = env.get("ZOOKEEPER_INIT_LIMIT") or "10"
        env["ZOOKEEPER_SYNC_LIMIT"] = env.get("ZOOKEEPER_SYNC_LIMIT") or "5"
    lines: list[Line] = [("dataDir", str(p.layout.data_dir), "ZOO_DATA_DIR")]
    if p.layout.data_log_dir is not None:
        lines.append(("dataLogDir", str(p.layout.data_log_dir), "ZOO_DATA_LOG_DIR"))
    lines += [(key, env[var], var) for var, key in CONFLUENT_KEYS if var in env]
    if env.get("ZOOKEEPER_SERVERS"):
        for i, spec in enumerate(env["ZOOKEEPER_SERVERS"].split(";"), 1):
            if not spec.strip():
                raise EnvError(f"ZOOKEEPER_SERVERS: entry {i} is empty (entries are host:port:port separated by ';')")
            lines.append((f"server.{i}", spec.strip(), "ZOOKEEPER_SERVERS"))
    for var in sorted(CONFLUENT_INERT & set(env)):
        if var == "ZOOKEEPER_LOG4J_ROOT_LOGLEVEL":
            p.log_level = _log_level(var, env[var])
        else:
            p.notes.append(f"{var}: log4j settings have no effect on coord")
    for var in CONFLUENT_JVM_INERT:
        if var in env:
            p.notes.append(f"{var}: JMX has no effect on coord (no JVM)")
    return lines, env.get("ZOOKEEPER_SERVER_ID") or None


def _log_level(var: str, value: str) -> str:
    level = LOG_LEVELS.get(value.strip().upper())
    if level is None:
        raise EnvError(f"{var}: {value!r} is not a log level ({', '.join(LOG_LEVELS)})")
    return level


def _jvm_options(var: str, value: str, notes: list[str]) -> list[tuple[str, str]]:
    """`-Dzookeeper.<key>=v` (and other -D properties coord's zoo.cfg parser acts on, such as the JAAS
    file) become zoo.cfg keys; other JVM options are noted and have no effect."""
    out = []
    for tok in value.split():
        if tok.startswith("-D"):
            prop, eq, v = tok[2:].partition("=")
            key = prop[len("zookeeper."):] if prop.startswith("zookeeper.") else prop
            why = unsupported(key, v)
            if why:
                raise EnvError(f"{var}: {tok.partition('=')[0]}: {why}")
            if prop.startswith("zookeeper.") or _acted_on(key, v):
                if not eq or not key:
                    raise EnvError(f"{var}: {tok} sets no value")
                out.append((key, v))
                continue
        notes.append(f"{var}: {tok} is a JVM option; coord runs no JVM, so it has no effect")
    return out


# Settings that ask for a feature (key, or prefix ending in "."). They stop the start while coord's
# zoo.cfg parser ignores them (a server silently without its TLS or SASL is worse than none), and pass
# by themselves once the parser acts on them.
FEATURE_KEYS = (
    ("secureClientPort", "TLS on the client port"),
    ("secureClientPortAddress", "TLS on the client port"),
    ("sslQuorum", "TLS on the quorum ports"),
    ("client.secure", "TLS on the client port"),
    ("authProvider.", "SASL or x509 authentication"),
    ("quorum.auth.enableSasl", "SASL quorum authentication"),
    ("sessionRequireClientSASLAuth", "SASL client authentication"),
    ("enforce.auth.enabled", "enforced authentication"),
    ("java.security.auth.login.config", "SASL (a JAAS file)"),
    ("metricsProvider.className", "Prometheus metrics"),
)


def _acted_on(key: str, value: str) -> bool:
    """Whether coord's zoo.cfg parser turns `key=value` into a setting (not unknown, not ignored)."""
    try:
        cfg = zoocfg.parse(f"{key}={value}\n", "-")
    except zoocfg.ConfigError:
        return True  # it is a key coord reads; _check reports the bad value
    if cfg.extra:
        return False
    cfg.warnings = []
    return cfg != zoocfg.ServerConfig(path="-")


def unsupported(key: str, value: str) -> str | None:
    """Why a zoo.cfg setting asks for something this coord does not serve (None: it does, or it asks
    for nothing)."""
    k = key[len("zookeeper."):] if key.startswith("zookeeper.") else key
    v = value.strip().lower()
    for name, what in FEATURE_KEYS:
        if k == name or (name.endswith(".") and k.startswith(name)):
            if v in ("", "false", "no", "0") or (name == "authProvider." and "sasl" not in v and "x509" not in v):
                return None
            return None if _acted_on(k, value) else f"{what}: not served by this coord yet"
    return None


# AdminServer keys an image may write that coord's zoo.cfg parser need not list.
INERT_KEYS = {"admin.serverAddress", "admin.idleTimeout"}


def _check(lines: list[Line]) -> None:
    """Every line from the environment must mean something to coord: zoo.cfg's own parser decides."""
    for key, value, var in lines:
        if key in INERT_KEYS or (key, var) == ("client.secure", "ZOO_TLS_CLIENT_ENABLE"):
            continue   # bitnami writes client.secure beside secureClientPort; a server ignores it
        why = unsupported(key, value)
        if why:
            raise EnvError(f"{var}: {key}={value}: {why} (docs/docker.md)")
        try:
            cfg = zoocfg.parse(f"{key}={value}\n", var)
        except zoocfg.ConfigError as e:
            raise EnvError(f"{var}: {str(e).split(': ', 1)[-1]}") from None
        if cfg.extra:
            raise EnvError(f"{var}: zoo.cfg key {key!r} is not one coord knows (see README: zoo.cfg keys)")


def _check_myid(lines: list[Line], myid: str | None, flavor: str) -> None:
    """The id written must be a server of the config written (ZooKeeper would refuse to start)."""
    if myid is None:
        return
    var = {OFFICIAL: "ZOO_MY_ID", BITNAMI: "ZOO_SERVER_ID", CONFLUENT: "ZOOKEEPER_SERVER_ID"}[flavor]
    try:
        sid = int(myid.strip())
    except ValueError:
        raise EnvError(f"{var}: myid must be an integer, got {myid!r}") from None
    if sid < 0:
        raise EnvError(f"{var}: myid must not be negative, got {sid}")
    sids = {int(k[len("server."):]) for k, _, _ in lines if k.startswith("server.")}
    if sids and sid not in sids:
        raise EnvError(f"{var}: server id {sid} has no server.{sid} entry among {sorted(sids)}")


def with_overrides(text: str, overrides: list[tuple[str, str]]) -> str:
    """A zoo.cfg text with keys set to new values: their lines replaced, the rest appended."""
    todo = dict(overrides)
    out = []
    for line in text.splitlines():
        key = line.partition("=")[0].strip()
        if "=" in line and not line.lstrip().startswith(("#", "!")) and key in todo:
            out.append(f"{key}={todo.pop(key)}")
        else:
            out.append(line)
    out += [f"{k}={v}" for k, v in todo.items()]
    return "\n".join(out) + "\n"
