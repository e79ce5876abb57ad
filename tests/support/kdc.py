"""A throwaway MIT Kerberos realm on loopback: krb5kdc (Debian `krb5-kdc`) in a temporary directory.

The realm's database, stash, kdc.conf and krb5.conf all live in the work directory; nothing reads
or writes /etc/krb5*. Processes that must see the realm get `env()` (KRB5_CONFIG, KRB5_KDC_PROFILE)
or, for a JVM, `jvm_flags()` (-Djava.security.krb5.conf): the JDK does not read KRB5_CONFIG.
The KDC serves TCP only (udp_preference_limit=1 in krb5.conf, so MIT and Java clients both use TCP).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from coord.bench.launch import free_port, stop_process

KRB5KDC = shutil.which("krb5kdc") or "/usr/sbin/krb5kdc"
KDB5_UTIL = shutil.which("kdb5_util") or "/usr/sbin/kdb5_util"
KADMIN_LOCAL = shutil.which("kadmin.local") or "/usr/sbin/kadmin.local"
KINIT = shutil.which("kinit") or "/usr/bin/kinit"
REALM = "COORD.TEST"


def available() -> bool:
    return all(os.access(p, os.X_OK) for p in (KRB5KDC, KDB5_UTIL, KADMIN_LOCAL, KINIT))


def missing_reason() -> str:
    return "MIT Kerberos KDC not installed (apt-get install krb5-kdc krb5-admin-server krb5-user; scripts/setup.sh does)"


class Kdc:
    """krb5kdc for `realm` on 127.0.0.1:<free port>; `add_principal` + `keytab` make credentials."""

    def __init__(self, workdir: Path, realm: str = REALM):
        self.workdir = Path(workdir)
        self.realm = realm
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.krb5_conf = self.workdir / "krb5.conf"
        self.kdc_conf = self.workdir / "kdc.conf"

    def env(self, base: dict | None = None) -> dict[str, str]:
        """An environment whose MIT Kerberos library (kinit, GSS-API, kadmin.local) uses this realm."""
        env = dict(os.environ if base is None else base)
        env.update(KRB5_CONFIG=str(self.krb5_conf), KRB5_KDC_PROFILE=str(self.kdc_conf),
                   KRB5RCACHEDIR=str(self.workdir))
        return env

    def jvm_flags(self) -> list[str]:
        return [f"-Djava.security.krb5.conf={self.krb5_conf}"]

    def _write_config(self) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"    default_realm = {self.realm}\n"
            "    dns_lookup_kdc = false\n    dns_lookup_realm = false\n"
            "    dns_canonicalize_hostname = false\n    rdns = false\n"
            "    udp_preference_limit = 1\n"
            "    ticket_lifetime = 1h\n    forwardable = false\n"
            "    clockskew = 10\n"    # MIT and the JDK both read it: an expired ticket fails in seconds
            "[realms]\n"
            f"    {self.realm} = {{\n        kdc = 127.0.0.1:{self.port}\n    }}\n"
            "[domain_realm]\n"
            f"    localhost = {self.realm}\n")
        self.kdc_conf.write_text(
            "[kdcdefaults]\n"
            f"    kdc_ports = {self.port}\n    kdc_tcp_ports = {self.port}\n"
            "[realms]\n"
            f"    {self.realm} = {{\n"
            f"        database_name = {d / 'principal'}\n"
            f"        key_stash_file = {d / 'stash'}\n"
            f"        acl_file = {d / 'kadm5.acl'}\n"
            "        max_life = 1h\n"
            "        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n"
            "    }\n"
            "[logging]\n"
            f"    kdc = FILE:{d / 'kdc.log'}\n")
        (d / "kadm5.acl").write_text("")

    def start(self, wait: float = 30.0) -> "Kdc":
        if not available():
            raise RuntimeError(missing_reason())
        self._write_config()
        subprocess.run([KDB5_UTIL, "create", "-s", "-r", self.realm, "-P", "coord-test-master"],
                       env=self.env(), check=True, capture_output=True, timeout=60)
        self.log = open(self.workdir / "krb5kdc.out", "ab")
        self.proc = subprocess.Popen([KRB5KDC, "-n", "-r", self.realm, "-P", str(self.workdir / "kdc.pid")],
                                     env=self.env(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + wait
        import socket
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"krb5kdc exited with {self.proc.returncode}; see {self.workdir}/kdc.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"krb5kdc not listening on 127.0.0.1:{self.port} after {wait}s")

    def kadmin(self, query: str) -> str:
        r = subprocess.run([KADMIN_LOCAL, "-r", self.realm, "-q", query], env=self.env(),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or "error" in r.stderr.lower():
            raise RuntimeError(f"kadmin.local -q {query!r}: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def principal(self, name: str) -> str:
        return name if "@" in name else f"{name}@{self.realm}"

    def add_principal(self, name: str, keytab: Path | None = None) -> Path | None:
        """A principal with a random key; with `keytab`, its key exported there (the file is made)."""
        self.kadmin(f"addprinc -randkey {self.principal(name)}")
        if keytab is not None:
            return self.export(name, keytab)
        return None

    def export(self, name: str, keytab: Path) -> Path:
        """Write the principal's current keys to `keytab` (ktadd -norandkey: the key stays as it is)."""
        self.kadmin(f"ktadd -norandkey -k {keytab} {self.principal(name)}")
        return Path(keytab)

    def rekey(self, name: str) -> None:
        """A new random key: keytabs exported before hold a stale key (kvno) from now on."""
        self.kadmin(f"cpw -randkey {self.principal(name)}")

    def kinit(self, name: str, keytab: Path, ccache: Path, lifetime: str | None = None) -> None:
        """Tickets for `name` from its keytab into a FILE ccache (`lifetime`: kinit -l, e.g. "5s")."""
        life = ["-l", lifetime] if lifetime else []
        subprocess.run([KINIT, "-k", "-t", str(keytab), "-c", f"FILE:{ccache}", *life, self.principal(name)],
                       env=self.env(), check=True, capture_output=True, timeout=30)

    def trust(self, other: "Kdc", password: str = "coord-cross-realm") -> None:
        """Cross-realm trust: principals of `other`'s realm get tickets for this realm's services
        (krbtgt/<this realm>@<other realm>, the same key in both databases), and this krb5.conf
        names `other`'s KDC too (clients and servers of this realm read it)."""
        name = f"krbtgt/{self.realm}@{other.realm}"
        for k in (self, other):
            k.kadmin(f"addprinc -pw {password} {name}")
        text = self.krb5_conf.read_text()
        self.krb5_conf.write_text(text.replace(
            "[domain_realm]\n", f"    {other.realm} = {{\n        kdc = 127.0.0.1:{other.port}\n    }}\n[domain_realm]\n", 1))

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)
            self.proc = None
            self.log.close()

    def __enter__(self) -> "Kdc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def need_kdc(modules: tuple[str, ...] = ("gssapi", "kerberos")) -> None:
    """A missing KDC, or a missing Python Kerberos package (python-gssapi, pykerberos: they build
    against libkrb5-dev): a failure under CI=1, a skip with the reason elsewhere."""
    import importlib.util
    missing = [] if available() else [missing_reason()]
    missing += [f"Python package {m!r} not installed (pip install -e '.[test]'; needs libkrb5-dev)"
                for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    import pytest
    if os.environ.get("CI"):
        pytest.fail(f"CI run without Kerberos: {'; '.join(missing)} (scripts/setup.sh installs it)")
    pytest.skip("; ".join(missing))


def kdc_fixture(scope: str = "module"):
    """A pytest fixture (use: `kdc = kdc_fixture()` in a conftest or test module) giving a started Kdc."""
    import pytest

    @pytest.fixture(scope=scope)
    def kdc(tmp_path_factory):
        need_kdc()
        k = Kdc(tmp_path_factory.mktemp("kdc")).start()
        yield k
        k.stop()
    return kdc
