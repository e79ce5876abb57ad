"""Security benchmark, coord vs real ZooKeeper 3.8 in the same run, same stores and JAAS file:

- requests over TLS (secureClientPort; ZooKeeper on Netty): P client processes, each one TLS
  connection issuing getData of a 100-byte znode back to back for D seconds: ops/s, p50, p99;
- new connections per second: TLS handshake (client certificate) + session + close; plain TCP +
  session + SASL DIGEST-MD5 login (pure-sasl, two round trips) + close; and plain TCP + session +
  close, the base that SASL adds its two round trips to; one client process each;
- with --gssapi, also plain TCP + session + SASL GSSAPI login (three round trips: AP-REQ, layer
  offer, layer choice; the client's service ticket cached as the Java client caches it) + close,
  against a second pair configured with Krb5LoginModule and a real MIT KDC (tests.support.kdc).
  --gssapi-only measures just that.

    .venv/bin/python -m tests.security.bench_security [--procs 4] [--seconds 8] [--rounds 3] [--gssapi]

Both servers share the machine with the clients; the ratio (coord / ZooKeeper) is what to read.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from tests.security.certs import Pki, ssl_keys
from tests.security.conftest import USERS, start_sasl_pair, write_jaas
from tests.security.saslraw import login, session
from tests.security.test_tls import tls_client


def _requests(args):
    pki, port, seconds, q = args   # forked: the Pki object is inherited, not pickled
    c = _tls(pki, port)
    lat = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        r = c.get_data("/bench")
        lat.append(time.perf_counter() - t0)
        assert r.err == 0
    c.close_socket()
    q.put(lat)


def _tls(pki, port):
    return tls_client(pki, "127.0.0.1", port, "other")


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def bench_requests(pki, port, procs, seconds):
    c = _tls(pki, port)
    c.delete("/bench")
    c.create("/bench", b"x" * 100)
    c.close_socket()
    mp.set_start_method("fork", force=True)
    q = mp.Queue()
    ps = [mp.Process(target=_requests, args=((pki, port, seconds, q),)) for _ in range(procs)]
    for p in ps:
        p.start()
    lats = []
    for _ in ps:
        lats += q.get(timeout=seconds + 60)
    for p in ps:
        p.join()
    return len(lats) / seconds, _pct(lats, 0.5) * 1e3, _pct(lats, 0.99) * 1e3


def bench_connects(fn, seconds):
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        fn()
        n += 1
    return n / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3, help="alternating zk/coord rounds; medians reported")
    ap.add_argument("--gssapi", action="store_true", help="also GSSAPI connects/s (starts a KDC)")
    ap.add_argument("--gssapi-only", action="store_true", help="only GSSAPI connects/s")
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="bench-security-"))
    if a.gssapi or a.gssapi_only:
        bench_gssapi(d / "gss", a.seconds / 2, a.rounds)
    if a.gssapi_only:
        return
    pki = Pki(d / "pki")
    pki.pem("other")
    pki.ca_pem()
    pair = start_sasl_pair(d, write_jaas(d / "jaas.conf"), ssl_keys(pki, "JKS"), secure=True)
    runs: dict[str, list] = {"zookeeper": [], "coord": []}
    try:
        for name, srv in (("zookeeper", pair.zk), ("coord", pair.coord)) * a.rounds:
            ops, p50, p99 = bench_requests(pki, srv.secure_port, a.procs, a.seconds)

            def tls_connect(port=srv.secure_port):
                tls_client(pki, "127.0.0.1", port, "other").close_socket()

            def sasl_connect(port=srv.client_port):
                c = session("127.0.0.1", port)
                steps = login(c, "jaasuser", USERS["jaasuser"])
                assert steps[-1].err == 0
                c.close_socket()

            def plain_connect(port=srv.client_port):
                session("127.0.0.1", port).close_socket()
            runs[name].append((ops, p50, p99, bench_connects(tls_connect, a.seconds / 2),
                               bench_connects(sasl_connect, a.seconds / 2),
                               bench_connects(plain_connect, a.seconds / 2)))
    finally:
        pair.stop()
    # Rounds alternate between the servers, so a burst of load from elsewhere hits both; medians.
    rows = {name: tuple(_pct([r[i] for r in rs], 0.5) for i in range(6)) for name, rs in runs.items()}
    for name, rs in runs.items():
        for r in rs:
            print(f"# {name:10} " + " ".join(f"{v:.2f}" for v in r))
    heads = ("TLS getData ops/s", "TLS p50 ms", "TLS p99 ms", "TLS connects/s", "SASL connects/s",
             "plain connects/s")
    print(f"{'':12}" + "".join(f"{h:>20}" for h in heads))
    for name, r in rows.items():
        print(f"{name:12}" + "".join(f"{v:>20.2f}" for v in r))
    z, c = rows["zookeeper"], rows["coord"]
    ratios = [c[0] / z[0], z[1] / c[1], z[2] / c[2], c[3] / z[3], c[4] / z[4], c[5] / z[5]]
    print(f"{'ratio':12}" + "".join(f"{v:>20.2f}" for v in ratios) + "   (coord vs ZooKeeper, >1 = coord better)")
    for name, r in rows.items():   # what the login adds to a plain connect, per connect
        print(f"{name}: SASL adds {1e3 / r[4] - 1e3 / r[5]:.2f} ms to a plain connect's {1e3 / r[5]:.2f} ms")


def bench_gssapi(d: Path, seconds: float, rounds: int) -> None:
    """GSSAPI connects/s, coord vs ZooKeeper, alternating rounds, medians."""
    from tests.security.conftest import start_krb_pair
    from tests.security.krb import gss_login, make_realm, restore_env, use_client_env
    from tests.support.kdc import Kdc
    kdc = Kdc(d / "kdc").start()
    old = None
    pair = None
    try:
        realm = make_realm(kdc, d / "realm")
        old = use_client_env(realm)
        pair = start_krb_pair(realm, d / "pair")
        runs: dict[str, list] = {"zookeeper": [], "coord": []}
        # One unmeasured round each first: the JVM's and PyPy's JITs warm up on the login path.
        for i, (name, srv) in enumerate((("zookeeper", pair.zk), ("coord", pair.coord)) * (rounds + 1)):
            def gss_connect(port=srv.client_port):
                c = session("localhost", port)
                steps = gss_login(c, "client")
                assert [s.err for s in steps] == [0, 0, 0] and steps[-1].token is None, steps
                c.close_socket()
            gss_connect()   # the service ticket, once, as a Java client's Subject keeps it
            rate = bench_connects(gss_connect, seconds)
            if i >= 2:
                runs[name].append(rate)
    finally:
        if pair is not None:
            pair.stop()
        if old is not None:
            restore_env(old)
        kdc.stop()
    for name, rs in runs.items():
        print(f"# {name:10} GSSAPI connects/s " + " ".join(f"{v:.1f}" for v in rs))
    z, c = _pct(runs["zookeeper"], 0.5), _pct(runs["coord"], 0.5)
    print(f"GSSAPI connects/s (medians): zookeeper {z:.1f}  coord {c:.1f}  ratio {c / z:.2f}   "
          "(coord vs ZooKeeper, >1 = coord better)")


if __name__ == "__main__":
    main()
