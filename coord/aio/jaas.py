"""JAAS login configuration files, as ZooKeeper users write them for the server's SASL.

`Name { <LoginModule> <required|requisite|sufficient|optional> key=value ... ; ... };` with `//`
and `/* */` comments and quoted or bare values (sun.security.provider.ConfigFile's grammar). The
server reads the section named by zookeeper.sasl.serverconfig (default `Server`): every
`user_<name>="<password>"` option of every module in it is a DIGEST-MD5 credential, and a
Krb5LoginModule in it (principal, keyTab) makes the server GSSAPI-only, as ZooKeeper's. A file that
cannot be read or parsed stops the start (ZooKeeper: "No JAAS configuration section named ...");
a readable file without the section leaves SASL off, as in ZooKeeper.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# java.io.StreamTokenizer as ConfigFile sets it up: words start with a letter, $ _ - * (or a Latin-1
# letter) and go on with digits and '.'; anything else outside quotes and comments is a parse error.
_WORD = r"[A-Za-z$_\-*\u00a0-\u00ff][A-Za-z0-9$_\-*.\u00a0-\u00ff]*"
_TOKEN = re.compile(r'\s+|//[^\n]*|/\*.*?\*/|"((?:[^"\\]|\\.)*)"|([{};=])|(' + _WORD + ')', re.S)
_FLAGS = {"required", "requisite", "sufficient", "optional"}


class JaasError(ValueError):
    pass


@dataclass
class LoginModule:
    name: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


def _tokens(text: str):
    pos = 0
    line = 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise JaasError(f"line {line}: unexpected {text[pos:pos + 20]!r}")
        start_line = line
        line += text.count("\n", pos, m.end())
        pos = m.end()
        if m.group(1) is not None:
            yield ("str", re.sub(r"\\(.)", r"\1", m.group(1)), start_line)
        elif m.group(2) is not None:
            yield ("sym", m.group(2), start_line)
        elif m.group(3) is not None:
            yield ("word", m.group(3), start_line)
        elif m.group(0).startswith("/*") and not m.group(0).endswith("*/"):
            raise JaasError(f"line {start_line}: unterminated comment")


def parse(text: str) -> dict[str, list[LoginModule]]:
    """Section name -> its login modules; JaasError names the line of a syntax error."""
    toks = list(_tokens(text))
    i = 0
    out: dict[str, list[LoginModule]] = {}

    def take(kind=None, value=None):
        nonlocal i
        if i >= len(toks):
            raise JaasError("unexpected end of file")
        t = toks[i]
        if (kind and t[0] != kind) or (value and t[1] != value):
            raise JaasError(f"line {t[2]}: expected {value or kind}, got {t[1]!r}")
        i += 1
        return t

    while i < len(toks):
        name = take("word")[1]
        take("sym", "{")
        modules: list[LoginModule] = []
        while True:
            if i >= len(toks):
                raise JaasError(f"section {name}: unexpected end of file")
            if toks[i][0] == "sym" and toks[i][1] == "}":
                break
            mod = take("word")[1]
            flag_tok = take("word")
            if flag_tok[1].lower() not in _FLAGS:
                raise JaasError(f"line {flag_tok[2]}: {mod}: control flag must be one of "
                                f"{', '.join(sorted(_FLAGS))}, got {flag_tok[1]!r}")
            lm = LoginModule(mod, flag_tok[1].lower())
            while True:
                t = toks[i] if i < len(toks) else None
                if t is None:
                    raise JaasError("unexpected end of file")
                if t[0] == "sym" and t[1] == ";":
                    i += 1
                    break
                key = take("word")[1]
                take("sym", "=")
                v = take()
                if v[0] == "sym":
                    raise JaasError(f"line {v[2]}: {key}: expected a value, got {v[1]!r}")
                lm.options[key] = v[1]
            modules.append(lm)
        take("sym", "}")
        take("sym", ";")
        out[name] = modules
    return out


def digest_users(modules: list[LoginModule]) -> dict[str, str]:
    """SaslServerCallbackHandler: user_<name>=<password> from every module of the section."""
    users: dict[str, str] = {}
    for m in modules:
        for k, v in m.options.items():
            if k.startswith("user_"):
                users[k[len("user_"):]] = v
    return users


def server_section(jaas_path: str | None, section: str | None) -> list[LoginModule] | None:
    """ServerCnxnFactory.configureSaslLogin: the login modules of the server's section, or None
    when SASL is off (no JAAS file, or a file without the section). A file that cannot be read or
    parsed is a JaasError."""
    if jaas_path is None:
        if section is not None:
            raise JaasError(f"sasl.serverconfig={section} is set but no JAAS file is (-Djava.security."
                            "auth.login.config in SERVER_JVMFLAGS, or the same key in zoo.cfg)")
        return None
    try:
        with open(jaas_path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise JaasError(f"JAAS file {jaas_path}: cannot read: {e.strerror}") from None
    try:
        sections = parse(text)
    except JaasError as e:
        raise JaasError(f"JAAS file {jaas_path}: {e}") from None
    return sections.get(section or "Server")


def server_users(jaas_path: str | None, section: str | None) -> dict[str, str] | None:
    """The DIGEST-MD5 users of the server's section, or None when SASL is off."""
    modules = server_section(jaas_path, section)
    return None if modules is None else digest_users(modules)


@dataclass
class KerberosLogin:
    """Krb5LoginModule's options for a server: whose keys it accepts with, and where they are."""
    principal: str           # primary/host[@REALM]: ZooKeeper's protocol and server name come from it
    keytab: str | None       # keyTab (None: the Kerberos library's default keytab, as Java's)


def kerberos_login(modules: list[LoginModule], jaas_path: str = "JAAS file") -> KerberosLogin | None:
    """The section's Krb5LoginModule, if any: a Subject with a Kerberos principal makes ZooKeeper's
    server GSSAPI-only. Options a server cannot run with are a JaasError (ZooKeeper fails too: at
    start for a login that fails, at every connection for a principal without '/' or storeKey)."""
    for m in modules:
        if m.name.rsplit(".", 1)[-1] != "Krb5LoginModule":
            continue
        o = m.options
        where = f"{jaas_path}: {m.name}"
        principal = o.get("principal")
        if not principal:
            raise JaasError(f"{where}: a server needs principal=\"<service>/<host>@<REALM>\"")
        if "/" not in principal.split("@", 1)[0]:
            raise JaasError(f"{where}: principal {principal!r} must be <service>/<host>[@REALM] "
                            "(ZooKeeper takes its SASL protocol and server name from it)")
        if o.get("useKeyTab", "false").lower() != "true":
            raise JaasError(f"{where}: a server needs useKeyTab=true and keyTab=\"<file>\" "
                            "(no password prompt or ticket cache for an acceptor)")
        if o.get("storeKey", "false").lower() != "true":
            raise JaasError(f"{where}: a server needs storeKey=true (without it the JVM keeps no key "
                            "to accept with and every GSSAPI login fails)")
        return KerberosLogin(principal, o.get("keyTab"))
    return None
