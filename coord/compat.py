"""`coord compat`: check a ZooKeeper-compatible endpoint, optionally beside a reference ZooKeeper.

Each check drives one behaviour through a real client (kazoo; zkCli.sh where installed) and reduces
what it saw to a canonical value (results, error names, versions, event types, name suffixes), never
to values that legitimately differ (zxids, times, session ids). With --reference the target must give
the reference's value; without, the value ZooKeeper 3.8 gives, written next to each check. Names are
made from --seed under a fresh /compat-<seed> subtree (removed afterwards), so a failing run is
replayed with the same seed. Prints a table (or --json) and exits 1 on any mismatch.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import threading

import click

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"                    # Debian's zookeeper-bin: the C client's shell
ZK_JAR = "/usr/share/java/zookeeper.jar"
JAVA_BATTERY = os.path.join(os.path.dirname(__file__), "CompatBattery.java")
_CLI_MT_KEEP = re.compile(r"rc = -?\d+|name = |value_len = |^version=")


def _err(e: BaseException) -> str:
    return type(e).__name__


def _four(hostport: str, word: str, timeout: float = 5.0) -> str:
    from coord.bench.launch import four_letter
    host, _, port = hostport.split(",")[0].rpartition(":")
    return four_letter(host, int(port), word, timeout)


class Checks:
    """Each c_* takes (client, base path, hosts) and returns a JSON-able canonical value."""

    def c_create_get_set_delete(self, zk, base, hosts):
        from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError
        p = f"{base}/a"
        out = [zk.create(p, b"v1") == p]
        data, st = zk.get(p)
        out += [data, st.version, st.dataLength, st.numChildren]
        st = zk.set(p, b"v2")
        out.append(st.version)
        for fn in (lambda: zk.create(p, b"x"), lambda: zk.delete(p, version=7), lambda: zk.get(p + "/nope")):
            try:
                fn()
                out.append("ok")
            except (NodeExistsError, BadVersionError, NoNodeError) as e:
                out.append(_err(e))
        zk.delete(p, version=1)
        out.append(zk.exists(p) is None)
        return [x.decode() if isinstance(x, bytes) else x for x in out]

    def c_sequential(self, zk, base, hosts):
        zk.create(f"{base}/seq")
        names = [zk.create(f"{base}/seq/n-", b"", sequence=True) for _ in range(3)]
        return [n.rsplit("/", 1)[1] for n in names]

    def c_ephemeral(self, zk, base, hosts):
        p = zk.create(f"{base}/eph", b"", ephemeral=True)
        st = zk.exists(p)
        out = [st.ephemeralOwner == zk.client_id[0]]
        from kazoo.exceptions import NoChildrenForEphemeralsError
        try:
            zk.create(f"{p}/child")
            out.append("ok")
        except NoChildrenForEphemeralsError as e:
            out.append(_err(e))
        return out

    def c_children_and_cversion(self, zk, base, hosts):
        zk.create(f"{base}/kids")
        for c in ("b", "a", "c"):
            zk.create(f"{base}/kids/{c}")
        zk.delete(f"{base}/kids/b")
        kids, st = zk.get_children(f"{base}/kids", include_data=True)
        return [sorted(kids), st.cversion, st.numChildren]

    def c_multi(self, zk, base, hosts):
        from kazoo.exceptions import BadVersionError, RolledBackError
        t = zk.transaction()
        t.create(f"{base}/m1", b"1")
        t.set_data(f"{base}/m1", b"2")
        ok = t.commit()
        t = zk.transaction()
        t.create(f"{base}/m2", b"1")
        t.check(f"{base}/m1", 5)
        bad = t.commit()
        return [[r if isinstance(r, (str, bool)) else getattr(r, "version", _err(r)) for r in ok],
                [_err(r) if isinstance(r, Exception) else r for r in bad],
                zk.exists(f"{base}/m2") is None, RolledBackError.__name__, BadVersionError.__name__]

    def c_acl(self, zk, base, hosts):
        from kazoo.client import KazooClient
        from kazoo.exceptions import NoAuthError
        from kazoo.security import make_digest_acl
        zk.create(f"{base}/secret", b"s", acl=[make_digest_acl("u", "p", all=True)])
        other = KazooClient(hosts=hosts, timeout=10)
        other.start(timeout=15)
        try:
            res = []
            for fn in (lambda: other.get(f"{base}/secret"), lambda: other.get_acls(f"{base}/secret")):
                try:
                    fn()
                    res.append("ok")
                except NoAuthError as e:
                    res.append(_err(e))
            other.add_auth("digest", "u:p")
            acl, _ = other.get_acls(f"{base}/secret")
            return [[(a.perms, a.id.scheme) for a in acl], res, other.get(f"{base}/secret")[0].decode()]
        finally:
            other.stop()
            other.close()

    def c_watches(self, zk, base, hosts):
        events, ev = [], threading.Event()

        def w(e):
            events.append((e.type, e.path.rsplit("/", 1)[-1]))
            ev.set()
        zk.create(f"{base}/w", b"")
        zk.get(f"{base}/w", watch=w)
        zk.set(f"{base}/w", b"x")
        ev.wait(10)
        ev.clear()
        zk.get_children(f"{base}/w", watch=w)
        zk.create(f"{base}/w/c")
        ev.wait(10)
        return events

    def c_sync_and_version(self, zk, base, hosts):
        zk.sync(base)
        return [zk.server_version()[0]]

    def c_session_close_removes_ephemerals(self, zk, base, hosts):
        from kazoo.client import KazooClient
        other = KazooClient(hosts=hosts, timeout=10)
        other.start(timeout=15)
        other.create(f"{base}/gone", b"", ephemeral=True)
        other.stop()
        other.close()
        return [zk.exists(f"{base}/gone") is None]

    def c_four_letter_words(self, zk, base, hosts):
        srvr = _four(hosts, "srvr")
        mntr = _four(hosts, "mntr")
        keys = {ln.split("\t")[0] for ln in mntr.splitlines() if "\t" in ln}
        return [_four(hosts, "ruok"), any(ln.startswith("Mode: ") for ln in srvr.splitlines()),
                all(k in keys for k in ("zk_znode_count", "zk_server_state", "zk_avg_latency"))]

    def c_zkcli(self, zk, base, hosts):
        """zkCli.sh, ZooKeeper's own Java client and shell."""
        if not os.path.exists(ZKCLI) or shutil.which("java") is None:
            return "zkCli.sh not installed"
        zk.create(f"{base}/cli", b"hello")
        p = subprocess.run([ZKCLI, "-server", hosts.split(",")[0], "get", f"{base}/cli"], capture_output=True,
                           text=True, timeout=120, env={k: v for k, v in os.environ.items() if k != "JAVA_TOOL_OPTIONS"})
        return ["hello" in p.stdout.splitlines(), p.returncode]

    def c_cli_mt(self, zk, base, hosts):
        """cli_mt, ZooKeeper's C client shell (libzookeeper-mt): one batch command per run; kept are the
        return codes, names, data and versions it prints (not zxids, times or session ids)."""
        if not os.path.exists(CLI_MT):
            return "cli_mt not installed"
        host = hosts.split(",")[0]
        out = []
        for cmd in ("create {p}", "create +s {p}/n-", "set {p} hello", "get {p}", "ls {p}", "create +e {p}/e",
                    "delete {p}", "delete {p}/nope", "sync {p}"):
            p = subprocess.run([CLI_MT, "-h", host, "-c", cmd.format(p=f"{base}/c")], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=60, stdin=subprocess.DEVNULL)
            lines = p.stdout.splitlines()
            keep = []
            for i, ln in enumerate(lines):
                t = ln.strip()
                if _CLI_MT_KEEP.search(t):
                    keep.append(t.split("\t")[0])
                    if t.startswith("value_len") and i + 1 < len(lines):
                        keep.append(lines[i + 1].strip())
                elif cmd.startswith("ls") and ln.startswith("\t") and "=" not in ln:
                    keep.append(t)
            out.append(keep)
        return out

    def c_java_client(self, zk, base, hosts):
        """ZooKeeper's own Java client (zookeeper.jar 3.8): coord/CompatBattery.java, run as a source
        file; each line is one canonical observation (create, watches, multi, containers, ...)."""
        if not os.path.exists(ZK_JAR) or shutil.which("java") is None:
            return "java or zookeeper.jar not installed"
        p = subprocess.run(["java", "-cp", ZK_JAR, JAVA_BATTERY, hosts, base], capture_output=True, text=True,
                           timeout=300, env={k: v for k, v in os.environ.items() if k != "JAVA_TOOL_OPTIONS"})
        out = [ln for ln in p.stdout.splitlines() if "=" in ln and not ln.startswith(("SLF4J", "log4j"))]
        return out + [f"exit={p.returncode}"]

    EXPECTED = {   # ZooKeeper 3.8's answers, for a run without --reference
        "create_get_set_delete": [True, "v1", 0, 2, 0, 1, "NodeExistsError", "BadVersionError", "NoNodeError", True],
        "sequential": ["n-0000000000", "n-0000000001", "n-0000000002"],
        "ephemeral": [True, "NoChildrenForEphemeralsError"],
        "children_and_cversion": [["a", "c"], 4, 2],
        "multi": [["{base}/m1", 1], ["RolledBackError", "BadVersionError"], True, "RolledBackError",
                  "BadVersionError"],
        "acl": [[[31, "digest"]], ["NoAuthError", "NoAuthError"], "s"],
        "watches": [["CHANGED", "w"], ["CHILD", "w"]],
        "sync_and_version": [3],
        "session_close_removes_ephemerals": [True],
        "four_letter_words": ["imok", True, True],
        "zkcli": [True, 0],
        "cli_mt": [["[{base}/c]: rc = 0", "name = {base}/c"],
                   ["[{base}/c/n-]: rc = 0", "name = {base}/c/n-0000000000"],
                   ["{base}/c: rc = 0 Stat:", "version=1"],
                   ["{base}/c: rc = 0", "value_len = 5", "hello", "version=1"],
                   ["{base}/c: rc = 0", "n-0000000000"],
                   ["[{base}/c/e]: rc = 0", "name = {base}/c/e"],
                   ["{base}/c: rc = -111"], ["{base}/c/nope: rc = -101"], ["[{base}/c]: rc = 0", "name = {base}/c"]],
        "java_client": ["create=/j", "create_again=NODEEXISTS", "get=v1 v0 len2", "set=1",
                        "event=NodeDataChanged /j", "set_bad_version=BADVERSION",
                        "sequential=[s-0000000000, s-0000000001]", "ephemeral_owner=true",
                        "children=[e, s-0000000000, s-0000000001]", "child_event=NodeChildrenChanged /j",
                        "multi=[CreateResult, SetDataResult]", "multi_fails=BADVERSION", "multi_rolled_back=true",
                        "persistent_recursive_watch=NodeCreated /m/deep", "container=/ct",
                        "delete_not_empty=NOTEMPTY", "sync=0", "get_missing=NONODE", "exit=0"],
    }

    def names(self) -> list[str]:
        return [n[2:] for n in dir(self) if n.startswith("c_")]


def _normalize(v, base: str):
    return json.loads(json.dumps(v, default=str).replace(base, "{base}"))


def run_one(hosts: str, seed: int, only: list[str] | None = None) -> dict:
    """{check: value or {"error": ...}} for one endpoint."""
    from kazoo.client import KazooClient
    checks = Checks()
    base = f"/compat-{seed}"
    zk = KazooClient(hosts=hosts, timeout=10)
    try:
        zk.start(timeout=20)
    except Exception as e:
        return {"connect": {"error": f"cannot connect: {e}"}}
    out = {}
    try:
        zk.ensure_path(base)
        for name in only or checks.names():
            sub = f"{base}/{name}"
            try:
                zk.ensure_path(sub)
                out[name] = _normalize(getattr(checks, "c_" + name)(zk, sub, hosts), sub)
            except Exception as e:   # a check that breaks is a result too
                out[name] = {"error": f"{_err(e)}: {e}"}
        try:
            zk.add_auth("digest", "u:p")       # the acl check's node: listing it needs READ
            zk.delete(base, recursive=True)
        except Exception:
            pass
    finally:
        zk.stop()
        zk.close()
    return out


def compare(target: dict, reference: dict | None) -> dict[str, bool]:
    want = reference if reference is not None else {k: _normalize(v, "{base}") for k, v in Checks.EXPECTED.items()}
    return {k: (k in want and target.get(k) == want[k]) for k in sorted(set(target) | set(want))}


@click.command("compat")
@click.option("--target", required=True, metavar="HOST:PORT[,...]", help="The endpoint to check.")
@click.option("--reference", default=None, metavar="HOST:PORT[,...]",
              help="A real ZooKeeper to compare with (default: ZooKeeper 3.8's known answers).")
@click.option("--seed", type=int, default=None, help="Names of the run (printed; replays a run).")
@click.option("--check", "only", multiple=True, help="Run only these checks.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def compat_command(target, reference, seed, only, as_json) -> None:
    """Run compatibility checks against a ZooKeeper-compatible endpoint."""
    seed = seed if seed is not None else random.randrange(1, 1 << 30)
    got = run_one(target, seed, list(only) or None)
    ref = run_one(reference, seed, list(only) or None) if reference else None
    verdict = compare(got, ref)
    if only:
        verdict = {k: v for k, v in verdict.items() if k in only}
    ok = all(verdict.values())
    if as_json:
        click.echo(json.dumps({"seed": seed, "target": target, "reference": reference, "ok": ok,
                               "checks": {k: {"target": got.get(k), "expected": (ref or {}).get(k) if ref else
                                              Checks.EXPECTED.get(k), "pass": v} for k, v in verdict.items()}},
                              indent=2, default=str))
    else:
        from rich.console import Console
        from rich.table import Table
        t = Table(title=f"coord compat {target} (seed {seed}; reference: {reference or 'ZooKeeper 3.8 answers'})")
        t.add_column("check")
        t.add_column("result")
        t.add_column("target")
        t.add_column("expected")
        for k, v in verdict.items():
            exp = (ref or {}).get(k) if ref else _normalize(Checks.EXPECTED.get(k), "{base}")
            t.add_row(k, "[green]pass[/green]" if v else "[red]MISMATCH[/red]",
                      "" if v else json.dumps(got.get(k), default=str)[:80], "" if v else json.dumps(exp, default=str)[:80])
        Console().print(t)
        click.echo(f"{sum(verdict.values())}/{len(verdict)} checks pass; replay with --seed {seed}")
    raise SystemExit(0 if ok else 1)
