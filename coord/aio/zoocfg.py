"""zoo.cfg: ZooKeeper's own configuration format, read the way ZooKeeper reads it.

Java-properties lines (`key=value`, `#`/`!` comments). Keys ZooKeeper takes as system properties
(`jute.maxbuffer`, `extendedTypesEnabled`, the super digest) are accepted with or without their
`zookeeper.` prefix. A bad value stops the start with the file and line named; an unknown key is a
warning, never fatal (operators carry zoo.cfg files between versions).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from coord.core.quorumserver import QuorumServer, parse_server_spec  # noqa: F401 (re-exported)
from coord.core.quorumserver import parse_int as _int, parse_port as _port
from coord.aio import limits as _limits


class ConfigError(Exception):
    pass


@dataclass
class ServerConfig:
    path: str | None = None
    tick_ms: int = 2000
    init_limit: int = 10
    sync_limit: int = 5
    data_dir: Path = Path("coord-data")
    data_log_dir: Path | None = None
    client_port: int = 2181
    client_port_address: str = "0.0.0.0"
    max_client_cnxns: int = 60
    min_session_timeout_ms: int = -1
    max_session_timeout_ms: int = -1
    four_letter_whitelist: set[str] = field(default_factory=lambda: set(DEFAULT_4LW))
    extended_types: bool = False
    super_digest: str | None = None
    jute_maxbuffer: int = 0xFFFFF
    force_sync: bool = True
    snap_count: int = 100000
    snap_retain_count: int = 3
    purge_interval_hours: int = 1          # autopurge on by default (hourly, keeping 3); 0 turns it off
    pre_alloc_size_kb: int = 65536
    snapshot_method: str | None = None   # coord.snapshotMethod: fork | inloop | auto (None: auto where fork exists)
    collapse_huge_pages: bool = True     # coord.collapseHugePages: keep the heap in huge pages (short forks)
    servers: dict[int, QuorumServer] = field(default_factory=dict)
    myid: int | None = None
    standalone_enabled: bool = True
    reconfig_enabled: bool = False
    dynamic_config_file: str | None = None
    read_only_enabled: bool = False
    quorum_listen_on_all_ips: bool = False   # peer ports bound on every address, not the server line's
    local_sessions_enabled: bool = False
    local_sessions_upgrading_enabled: bool = False
    metrics_port: int | None = None
    metrics_provider: str | None = None       # metricsProvider.className (coord.aio.metrics)
    metrics_host: str = "0.0.0.0"             # metricsProvider.httpHost
    metrics_export_jvm: bool = True           # metricsProvider.exportJvmInfo: process_*/python_* here
    admin_server_address: str = "0.0.0.0"     # admin.serverAddress (coord.aio.admin)
    admin_command_url: str = "/commands"      # admin.commandURL
    admin_enable_server: bool = True          # admin.enableServer: ZooKeeper's default (coord.aio.admin)
    admin_server_port: int = 8080
    admin_rate_limiter_interval_ms: int | None = None   # admin.rateLimiterIntervalInMS (restore; None: 300000)
    admin_restore_enabled: bool = True        # admin.restore.enabled (false: restore answers 503, as 3.9)
    container_check_interval_ms: int = 60000
    max_log_file_bytes: int = 64 * 1024 * 1024
    test_zxid_counter_limit: int | None = None
    # Security (docs/security.md). The JAAS file comes from -Djava.security.auth.login.config in
    # SERVER_JVMFLAGS / JVMFLAGS, as ZooKeeper's scripts pass it, or from this same key in zoo.cfg.
    jaas_config: str | None = None
    sasl_server_section: str | None = None      # sasl.serverconfig (None: "Server", not set by hand)
    sasl_users: dict[str, str] | None = None    # the JAAS section's user_<name> (None: SASL is off)
    sasl_gss: object | None = None              # its Krb5LoginModule logged in (coord.aio.gss.Acceptors): GSSAPI
    quorum_auth: dict[str, str] = field(default_factory=dict)   # quorum.auth.* (a ZooKeeper observer's peer link)
    krb5_conf: str | None = None                # -Djava.security.krb5.conf (None: the library's default)
    auth_providers: dict[str, str] = field(default_factory=dict)   # authProvider.<suffix> -> class
    sasl_super_users: dict[str, str] = field(default_factory=dict)  # superUser[.N] -> SASL id
    sasl_super_password: str | None = None      # SASLAuthenticationProvider.superPassword
    kerberos_remove_host: bool = False          # kerberos.removeHostFromPrincipal
    kerberos_remove_realm: bool = False         # kerberos.removeRealmFromPrincipal
    allow_sasl_failed_clients: bool = False     # allowSaslFailedClients
    secure_client_port: int | None = None       # secureClientPort: a TLS-only client port
    secure_client_port_address: str | None = None
    client_port_unification: bool = False       # client.portUnification: clientPort takes TLS too
    ssl: dict[str, str] = field(default_factory=dict)   # ssl.* keys for coord.aio.tls
    ssl_quorum: bool = False                    # sslQuorum: peer links dial with TLS
    quorum_port_unification: bool = False       # portUnification: quorum/election ports take TLS and plain
    ssl_quorum_reload: bool = False             # sslQuorumReloadCertFiles
    ssl_quorum_keys: dict[str, str] = field(default_factory=dict)   # ssl.quorum.* (coord.aio.quorum_tls)
    enforce_auth_enabled: bool = False          # enforce.auth.enabled
    enforce_auth_schemes: tuple[str, ...] = ()  # enforce.auth.schemes
    session_require_sasl: bool = False          # sessionRequireClientSASLAuth (wins over enforce.auth.*)
    limits: dict = field(default_factory=lambda: _limits.defaults())   # coord.aio.limits keys
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    # coord.peerProtocol: "zab" (coord's own ensemble) or "zookeeper" (this server is an observer of
    # the ZooKeeper ensemble named by the server.N lines; coord.aio.zkobserver)
    peer_protocol: str = "zab"

    @property
    def log_dir(self) -> Path:
        return self.data_log_dir or self.data_dir

    @property
    def standalone(self) -> bool:
        voters = [s for s in self.servers.values() if s.role == "participant"]
        return not self.servers or (len(self.servers) == 1 and len(voters) == 1 and self.standalone_enabled)


SAFE_4LW = ("ruok", "srvr", "stat", "mntr", "isro", "conf", "envi")
ALL_4LW = ("ruok", "srvr", "stat", "mntr", "conf", "envi", "cons", "wchs", "wchc", "wchp", "dump",
           "isro", "crst", "srst", "dirs", "gtmk", "stmk", "hash")
DEFAULT_4LW = SAFE_4LW


def _bool(v: str, key: str) -> bool:
    s = v.strip().lower()
    if s in ("true", "yes", "1", "on"):
        return True
    if s in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"{key} must be true or false, got {v!r}")


KNOWN_IGNORED = {
    "admin.commandURL", "electionAlg", "syncEnabled", "globalOutstandingLimit",
    "metricsProvider.className", "metricsProvider.exportJvmInfo", "skipACL",
    "snapshot.trust.empty", "audit.enable", "serverCnxnFactory",
    "zookeeper.snapshot.compression.method", "requireClientAuthScheme", "jaasLoginRenew",
    "snapshot.compression.method", "digest.enabled", "fsync.warningthresholdms",
    "zookeeper.fsync.warningthresholdms", "maxResponseCacheSize", "connectToLearnerMasterLimit",
    "multiAddress.enabled", "tcpKeepAlive", "clientPortListenBacklog", "quorum.auth.enableSasl",
    "cnxTimeout", "peerType", "learner.asyncSending",
    "leader.closeSocketAsync", "learner.closeSocketAsync",
}


def parse(text: str, path: str = "zoo.cfg") -> ServerConfig:
    cfg = ServerConfig(path=path)
    seen_dynamic_servers = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        if "=" not in line:
            raise ConfigError(f"{path}:{lineno}: expected key=value, got {line!r}")
        key, _, value = line.partition("=")
        key = key.strip()
        value = value.strip()
        k = key[len("zookeeper."):] if key.startswith("zookeeper.") else key
        try:
            _apply(cfg, k, value)
            if k.startswith("server."):
                seen_dynamic_servers = True
        except UnknownKey:
            cfg.warnings.append(f"{path}:{lineno}: unknown key {key!r} ignored")
            cfg.extra[key] = value
        except ValueError as e:
            raise ConfigError(f"{path}:{lineno}: {e}") from None
    _ = seen_dynamic_servers
    return cfg


class UnknownKey(Exception):
    pass


def _apply(cfg: ServerConfig, k: str, v: str) -> None:
    if k == "coord.peerProtocol":
        if v not in ("zab", "zookeeper"):
            raise ValueError(f"coord.peerProtocol must be zab or zookeeper, got {v!r}")
        cfg.peer_protocol = v
    elif k == "tickTime":
        cfg.tick_ms = _int(v, k)
        if cfg.tick_ms <= 0:
            raise ValueError("tickTime must be positive")
    elif k == "initLimit":
        cfg.init_limit = _int(v, k)
    elif k == "syncLimit":
        cfg.sync_limit = _int(v, k)
    elif k == "dataDir":
        if not v:
            raise ValueError("dataDir must not be empty")
        cfg.data_dir = Path(v)
    elif k == "dataLogDir":
        cfg.data_log_dir = Path(v) if v else None
    elif k == "clientPort":
        cfg.client_port = _port(v, k)
    elif k == "clientPortAddress":
        cfg.client_port_address = v
    elif k == "maxClientCnxns":
        cfg.max_client_cnxns = _int(v, k)
    elif k == "minSessionTimeout":
        cfg.min_session_timeout_ms = _int(v, k)
    elif k == "maxSessionTimeout":
        cfg.max_session_timeout_ms = _int(v, k)
    elif k == "4lw.commands.whitelist":
        words = {w.strip() for w in v.split(",") if w.strip()}
        if "*" in words:
            cfg.four_letter_whitelist = set(ALL_4LW)
        else:
            # ZooKeeper ignores names it does not know (a zoo.cfg it accepts must start coord too)
            # and always enables srvr (zkServer.sh status depends on it).
            bad = sorted(w for w in words if w not in ALL_4LW)
            if bad:
                cfg.warnings.append(f"4lw.commands.whitelist: unknown command(s) {', '.join(bad)} ignored")
            cfg.four_letter_whitelist = (words & set(ALL_4LW)) | {"srvr"}
    elif k == "extendedTypesEnabled":
        cfg.extended_types = _bool(v, k)
    elif k in ("superDigest", "DigestAuthenticationProvider.superDigest"):
        if v.count(":") != 1:
            raise ValueError(f"{k} must be user:base64digest")
        cfg.super_digest = v
    elif k == "jute.maxbuffer":
        n = int(v, 0) if v.lower().startswith("0x") else _int(v, k)
        if n <= 0:
            raise ValueError("jute.maxbuffer must be positive")
        cfg.jute_maxbuffer = n
    elif k == "forceSync":
        cfg.force_sync = _bool(v, k)
    elif k == "snapCount":
        cfg.snap_count = _int(v, k)
        if cfg.snap_count < 2:
            raise ValueError("snapCount must be at least 2")
    elif k == "autopurge.snapRetainCount":
        cfg.snap_retain_count = max(3, _int(v, k))
    elif k == "autopurge.purgeInterval":
        cfg.purge_interval_hours = _int(v, k)
    elif k == "preAllocSize":
        cfg.pre_alloc_size_kb = _int(v, k)
    elif k.startswith("server."):
        try:
            sid = int(k[len("server."):])
        except ValueError:
            raise ValueError(f"{k}: server id must be an integer") from None
        if sid < 0:
            raise ValueError(f"{k}: server id must not be negative")
        cfg.servers[sid] = parse_server_spec(sid, v)
    elif k == "standaloneEnabled":
        cfg.standalone_enabled = _bool(v, k)
    elif k == "reconfigEnabled":
        cfg.reconfig_enabled = _bool(v, k)
    elif k == "dynamicConfigFile":
        cfg.dynamic_config_file = v
    elif k == "readonlymode.enabled":
        cfg.read_only_enabled = _bool(v, k)
    elif k == "localSessionsEnabled":
        cfg.local_sessions_enabled = _bool(v, k)
    elif k == "localSessionsUpgradingEnabled":
        cfg.local_sessions_upgrading_enabled = _bool(v, k)
    elif k in ("metricsProvider.httpPort", "metricsPort"):
        cfg.metrics_port = _port(v, k)
    elif k == "metricsProvider.className":
        from coord.aio.metrics import check_provider
        cfg.metrics_provider = check_provider(v)
    elif k == "metricsProvider.httpHost":
        cfg.metrics_host = v
    elif k == "metricsProvider.exportJvmInfo":
        cfg.metrics_export_jvm = _bool(v, k)
    elif k == "admin.serverAddress":
        cfg.admin_server_address = v
    elif k == "admin.commandURL":
        cfg.admin_command_url = v if v.startswith("/") else "/" + v
    elif k == "admin.enableServer":
        cfg.admin_enable_server = _bool(v, k)
    elif k == "admin.serverPort":
        cfg.admin_server_port = _port(v, k)
    elif k == "admin.rateLimiterIntervalInMS":
        cfg.admin_rate_limiter_interval_ms = _int(v, k)
    elif k == "admin.restore.enabled":
        cfg.admin_restore_enabled = _bool(v, k)
    elif k in ("znode.container.checkIntervalMs", "containerCheckIntervalMs"):
        cfg.container_check_interval_ms = _int(v, k)
    elif k == "coord.snapshotMethod":
        if v not in ("fork", "inloop", "auto"):
            raise ValueError(f"{k} must be fork, inloop or auto, got {v!r}")
        cfg.snapshot_method = v
    elif k == "coord.collapseHugePages":
        cfg.collapse_huge_pages = _bool(v, k)
    elif k in ("coord.maxLogFileBytes",):
        cfg.max_log_file_bytes = _int(v, k)
    elif k == "quorumListenOnAllIPs":
        cfg.quorum_listen_on_all_ips = _bool(v, k)
    elif k in ("coord.testZxidCounterLimit",):
        cfg.test_zxid_counter_limit = _int(v, k)
    elif _apply_security(cfg, k, v) or _apply_quorum_tls(cfg, k, v):
        return
    elif _limits.apply_key(cfg.limits, k, v, cfg.warnings):
        return
    elif k.startswith("quorum.auth."):
        cfg.quorum_auth[k] = v
    elif k in KNOWN_IGNORED or k.startswith("ssl.") or k.startswith("metricsProvider."):
        return
    else:
        raise UnknownKey(k)


_AUTH_PROVIDERS = {
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider": "sasl",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider": "x509",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider": "digest",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider": "ip",
    "org.apache.zookeeper.server.auth.EnsembleAuthenticationProvider": "ensemble",
}


def _exact_true(v: str, key: str) -> bool:
    """ZooKeeper enables these only for the exact string "true"; anything but true/false is a typo."""
    if v not in ("true", "false"):
        raise ValueError(f"{key} must be true or false (ZooKeeper reads only the exact string \"true\"), got {v!r}")
    return v == "true"


def _apply_security(cfg: ServerConfig, k: str, v: str) -> bool:
    """The SASL keys (zoo.cfg names, or their zookeeper.* property names); False if not one."""
    if k == "java.security.auth.login.config":
        if not v:
            raise ValueError(f"{k} must name a JAAS file")
        cfg.jaas_config = v
    elif k == "java.security.krb5.conf":
        if not v:
            raise ValueError(f"{k} must name a Kerberos configuration file")
        cfg.krb5_conf = v
    elif k == "sasl.serverconfig":
        if not v:
            raise ValueError(f"{k} must name a JAAS section")
        cfg.sasl_server_section = v
    elif k.startswith("authProvider."):
        if v not in _AUTH_PROVIDERS:
            raise ValueError(f"{k}: unknown authentication provider {v!r} (coord serves "
                             f"{', '.join(sorted(_AUTH_PROVIDERS))})")
        cfg.auth_providers[k[len("authProvider."):]] = v
    elif k == "superUser" or k.startswith("superUser."):
        cfg.sasl_super_users[k] = v
    elif k == "SASLAuthenticationProvider.superPassword":
        cfg.sasl_super_password = v
    elif k == "kerberos.removeHostFromPrincipal":
        cfg.kerberos_remove_host = _exact_true(v, k)
    elif k == "kerberos.removeRealmFromPrincipal":
        cfg.kerberos_remove_realm = _exact_true(v, k)
    elif k == "allowSaslFailedClients":
        cfg.allow_sasl_failed_clients = _bool(v, k)
    elif k == "enforce.auth.enabled":
        cfg.enforce_auth_enabled = _bool(v, k)
    elif k == "enforce.auth.schemes":
        cfg.enforce_auth_schemes = tuple(x.strip() for x in v.split(",") if x.strip())
    elif k == "sessionRequireClientSASLAuth":
        cfg.session_require_sasl = _bool(v, k)
    elif k == "secureClientPort":
        cfg.secure_client_port = _port(v, k)
    elif k == "secureClientPortAddress":
        cfg.secure_client_port_address = v
    elif k == "client.portUnification":
        cfg.client_port_unification = _bool(v, k)
    elif ((k.startswith("ssl.") and not k.startswith("ssl.quorum.")) or k == "coord.tlsHandshakeTimeoutMs"
          or k == "X509AuthenticationProvider.superUser"):
        from coord.aio.tls import TlsConfigError, TlsSettings
        try:
            TlsSettings.from_keys({k: v})
        except TlsConfigError as e:
            raise ValueError(str(e)) from None
        cfg.ssl[k] = v
    else:
        return False
    return True


def _apply_quorum_tls(cfg: ServerConfig, k: str, v: str) -> bool:
    """sslQuorum, portUnification, sslQuorumReloadCertFiles and ssl.quorum.*; False if not one."""
    if k == "sslQuorum":
        cfg.ssl_quorum = _bool(v, k)
    elif k == "portUnification":
        cfg.quorum_port_unification = _bool(v, k)
    elif k == "sslQuorumReloadCertFiles":
        cfg.ssl_quorum_reload = _bool(v, k)
    elif k.startswith("ssl.quorum."):
        from coord.aio.tls import TlsConfigError, TlsSettings
        try:
            TlsSettings.from_keys({k: v}, prefix="ssl.quorum")
        except TlsConfigError as e:
            raise ValueError(str(e)) from None
        cfg.ssl_quorum_keys[k] = v
    else:
        return False
    return True


def quorum_tls_config(cfg: ServerConfig):
    """The peer links' TLS settings (coord.aio.quorum_tls.QuorumTlsConfig)."""
    from coord.aio.quorum_tls import QuorumTlsConfig
    return QuorumTlsConfig(cfg.ssl_quorum, cfg.quorum_port_unification, cfg.ssl_quorum_reload,
                           dict(cfg.ssl_quorum_keys))


def enforced_schemes(cfg: ServerConfig) -> frozenset:
    """AuthenticationHelper: the schemes every request must be authenticated with (empty: none).
    Each needs a provider: ip and digest always, x509 with a secureClientPort, others through
    authProvider.N (ZooKeeper: "Authentication scheme ... is not available")."""
    if cfg.session_require_sasl:
        schemes = ("sasl",)
    elif cfg.enforce_auth_enabled:
        schemes = cfg.enforce_auth_schemes
        if not schemes:
            raise ValueError("enforce.auth.enabled is true but enforce.auth.schemes is empty")
    else:
        return frozenset()
    available = {"ip", "digest"} | set(_AUTH_PROVIDERS[c] for c in cfg.auth_providers.values())
    if cfg.secure_client_port is not None:
        available.add("x509")
    missing = [x for x in schemes if x not in available]
    if missing:
        raise ValueError(f"Authentication scheme {missing[0]} is not available (enforce.auth.schemes / "
                         "sessionRequireClientSASLAuth need its authProvider.N line)")
    return frozenset(schemes)


JVM_FLAG_VARS = ("SERVER_JVMFLAGS", "JVMFLAGS")   # zkServer.sh runs java $SERVER_JVMFLAGS $JVMFLAGS


def jvm_properties(environ) -> list[tuple[str, str, str]]:
    """The -Dname=value system properties in SERVER_JVMFLAGS and JVMFLAGS, in command-line order
    (a later one wins, as in the JVM): (variable, name, value)."""
    import shlex
    out = []
    for var in JVM_FLAG_VARS:
        text = environ.get(var, "")
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise ConfigError(f"{var}: cannot split {text!r}: {e}") from None
        for w in words:
            if w.startswith("-D"):
                name, _, value = w[2:].partition("=")
                out.append((var, name, value))
    return out


def apply_jvm_properties(cfg: ServerConfig, environ, file_keys: set[str]) -> None:
    """System properties a ZooKeeper server would take from its JVM flags: the JAAS file, and
    zookeeper.<key> for the keys this parser knows. A key the zoo.cfg sets itself wins (ZooKeeper
    sets the property from zoo.cfg after the JVM started)."""
    for var, name, value in jvm_properties(environ):
        if name in ("java.security.auth.login.config", "java.security.krb5.conf"):
            k = name
        elif name.startswith("zookeeper."):
            k = name[len("zookeeper."):]
        else:
            continue
        if k in file_keys:
            continue
        try:
            _apply(cfg, k, value)
        except UnknownKey:
            continue
        except ValueError as e:
            raise ConfigError(f"{var}: -D{name}: {e}") from None


def load(path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> ServerConfig:
    """Read zoo.cfg (and its dynamic file, and dataDir/myid). `data_dir` overrides dataDir before myid
    is read; without it the file must set dataDir, as ZooKeeper insists (no silent ./coord-data)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    cfg = parse(text, str(p))
    file_keys = set()
    for line in text.splitlines():
        key = line.strip().partition("=")[0].strip()
        file_keys.add(key[len("zookeeper."):] if key.startswith("zookeeper.") else key)
    apply_jvm_properties(cfg, os.environ, file_keys)
    from coord.aio.jaas import JaasError, digest_users, kerberos_login, server_section
    try:
        modules = server_section(cfg.jaas_config, cfg.sasl_server_section)
        if modules is not None:
            cfg.sasl_users = digest_users(modules)
            login = kerberos_login(modules, cfg.jaas_config)
            if login is not None:
                from coord.aio.gss import Acceptors, GssConfigError
                try:
                    cfg.sasl_gss = Acceptors(login, cfg.krb5_conf)
                except GssConfigError as e:
                    raise ConfigError(f"{cfg.jaas_config}: {e}") from None
    except JaasError as e:
        raise ConfigError(str(e)) from None
    if cfg.secure_client_port_address is not None and cfg.secure_client_port is None:
        raise ConfigError(f"{p}: secureClientPortAddress is set but secureClientPort is not set")
    if cfg.secure_client_port is not None or cfg.client_port_unification:
        from coord.aio.tls import TlsConfigError, TlsSettings, server_context
        try:
            server_context(TlsSettings.from_keys(cfg.ssl))
        except TlsConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
    try:
        enforced_schemes(cfg)
    except ValueError as e:
        raise ConfigError(f"{p}: {e}") from None
    if cfg.ssl_quorum or cfg.quorum_port_unification:
        from coord.aio.tls import TlsConfigError
        try:
            quorum_tls_config(cfg).validate()
        except TlsConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
    if cfg.jaas_config and cfg.sasl_users is None:
        cfg.warnings.append(f"JAAS file {cfg.jaas_config} has no {cfg.sasl_server_section or 'Server'} "
                            "section: SASL is off")
    if data_dir is not None:
        cfg.data_dir = Path(data_dir)
    elif not any(line.strip().partition("=")[0].strip() in ("dataDir", "zookeeper.dataDir")
                 for line in text.splitlines()):
        raise ConfigError(f"{p}: dataDir is not set (add a dataDir=/path line, or pass --data-dir)")
    if cfg.dynamic_config_file:
        dyn = Path(cfg.dynamic_config_file)
        if not dyn.is_absolute():
            dyn = p.parent / dyn
        if dyn.exists():
            d = parse(dyn.read_text(), str(dyn))
            cfg.servers.update(d.servers)
    myid_file = cfg.data_dir / "myid"
    if cfg.servers and myid_file.exists():
        txt = myid_file.read_text().strip()
        try:
            cfg.myid = int(txt)
        except ValueError:
            raise ConfigError(f"{myid_file}: myid must be an integer, got {txt!r}") from None
    if cfg.servers and len(cfg.servers) > 1 and cfg.myid is None:
        raise ConfigError(f"{myid_file}: missing; an ensemble member needs its server id in dataDir/myid")
    if cfg.myid is not None and cfg.servers and cfg.myid not in cfg.servers:
        raise ConfigError(f"{myid_file}: myid {cfg.myid} has no server.{cfg.myid} line in {p}")
    me = cfg.servers.get(cfg.myid if cfg.myid is not None else next(iter(cfg.servers), None))
    if cfg.standalone and me is not None and me.client_port is not None:
        # A lone `server.1=host:p:p;clientPort` line names the client port, as in ZooKeeper (the official
        # Docker image writes no clientPort line).
        cfg.client_port = me.client_port
        cfg.client_port_address = me.client_host or cfg.client_port_address
    return cfg
