#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Debian packages the tests use, a virtualenv, the project.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
[ -f /usr/share/java/zookeeper.jar ] && [ -x /usr/share/zookeeper/bin/zkCli.sh ] || need_apt+=(zookeeper)
[ -x /usr/lib/zookeeper/bin/cli_mt ] || need_apt+=(zookeeper-bin)
command -v javac >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
command -v nc >/dev/null 2>&1 || need_apt+=(netcat-openbsd)  # the README's `echo mntr | nc ...`
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)  # Kafka from Maven Central (kafka/pom.xml)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)  # tests/ensemble/test_disk_faults.py builds an fsync-failing shim for ZooKeeper
# tests/ops: a real Prometheus scrapes coord and ZooKeeper; ZooKeeper's metrics servlet needs the servlet API
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
[ -f /usr/share/java/servlet-api.jar ] || need_apt+=(libservlet-api-java)
# tests/security: a real MIT KDC (krb5kdc, kdb5_util, kadmin.local, kinit) and the headers python-gssapi
# and pykerberos build against (SASL GSSAPI)
[ -x /usr/sbin/krb5kdc ] && [ -x /usr/sbin/kadmin.local ] && command -v kinit >/dev/null 2>&1 \
  || need_apt+=(krb5-kdc krb5-admin-server krb5-user)
command -v krb5-config >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
# coord.bench.metrics_icount (metrics_ab --mode icount): the server's instructions counted by callgrind
command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1 || need_apt+=(valgrind)
# The servers' runtime: PyPy runs coord's request path 2-5x faster than CPython (coord/runtime.py).
command -v pypy3 >/dev/null 2>&1 && pypy3 -c 'import venv, ensurepip' 2>/dev/null \
  && ls /usr/include/pypy3*/Python.h >/dev/null 2>&1 || need_apt+=(pypy3 pypy3-venv pypy3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ${#need_apt[@]} -gt 0 ] && ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: no apt-get here; install ${need_apt[*]} by hand (without PyPy, servers run on CPython)" >&2
  need_apt=()
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
# The server runtime: a PyPy virtualenv with coord's own dependencies (no test tools), named in the
# CPython venv so that `coord serve` started from it re-executes on PyPy. Without PyPy, servers run
# on CPython (slower, same behaviour).
if command -v pypy3 >/dev/null 2>&1; then
  [ -x .venv-pypy/bin/python ] || pypy3 -m venv .venv-pypy
  pstamp=.venv-pypy/.installed-$(sha1sum pyproject.toml | cut -c1-12)
  if [ ! -f "$pstamp" ]; then
    .venv-pypy/bin/pip install -q --upgrade pip
    .venv-pypy/bin/pip install -q --prefer-binary -e .  # --prefer-binary: an older wheel, not a Rust build
    .venv-pypy/bin/pip install -q -e '.[kerberos]'   # SASL GSSAPI (coord.aio.gss): gssapi, built from source
    .venv-pypy/bin/python -c 'import zstandard, cramjam, cryptography, jks' || { echo "setup: PyPy venv incomplete" >&2; exit 1; }
    touch "$pstamp"
  fi
  echo "$PWD/.venv-pypy/bin/python" > .venv/coord-server-python
else
  rm -f .venv/coord-server-python
fi
# Java artifacts from Maven Central: a pom's runtime jars copied once into .cache/<name>-<hash of the
# pom> (a changed pom fetches again). Under CI a fetch that fails stops set-up; elsewhere the tests
# that need the jars skip, as the message says.
maven_libs() {   # pom, cache name, what (for CI's error), what skips without it; sets libs_dir
  local dir=.cache/$2-$(sha1sum "$1" | cut -c1-12)
  libs_dir=$dir
  [ -f "$dir/.complete" ] && return 0
  if command -v mvn >/dev/null 2>&1 && rm -rf "$dir" && mvn -q -B -f "$1" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/$dir"; then
    touch "$dir/.complete"
  elif [ -n "${CI:-}" ]; then
    echo "setup: could not fetch $3 from Maven Central ($1); needs mvn and the registry" >&2
    exit 1
  else
    echo "setup: no $3 (needs mvn and Maven Central): $4 will skip" >&2
  fi
}
# Real Kafka 3.9 brokers (`coord kafka up`, tests/kafka; coord/kafka/libs.py finds them).
maven_libs kafka/pom.xml kafka-libs "Kafka libs" "tests/kafka"
kafka_libs=$libs_dir
# ZooKeeper 3.8's PrometheusMetricsProvider (Debian's zookeeper lacks it) for tests/ops' ZooKeeper runs.
maven_libs tests/ops/zk-prometheus-pom.xml zk-prometheus "ZooKeeper's Prometheus provider jars" "tests/ops' ZooKeeper runs"
# ZooKeeper 3.9 (AdminServer `snapshot`/`restore`; Debian ships 3.8) for tests/ops/test_restore_zk39.py.
maven_libs tests/ops/zk39-pom.xml zk39 "ZooKeeper 3.9 jars" "tests/ops/test_restore_zk39.py"
# cli_mt with TLS (tests/security/test_cli_mt_tls.py): Debian's is built without OpenSSL; built once
# from Debian's zookeeper source package into .cache/zk-c-client-tls.
if ! bash scripts/build-cli-mt-tls.sh; then
  if [ -n "${CI:-}" ]; then echo "setup: could not build the TLS cli_mt (scripts/build-cli-mt-tls.sh)" >&2; exit 1; fi
  echo "setup: no TLS cli_mt: tests/security/test_cli_mt_tls.py will skip" >&2
fi
if [ -f "$kafka_libs/.complete" ]; then
  echo "setup: Kafka $(cd "$kafka_libs" && ls kafka_2.13-*.jar | sed 's/kafka_2.13-//; s/.jar$//') from Maven Central; the brokers embed ZooKeeper client $(cd "$kafka_libs" && ls zookeeper-[0-9]*.jar | sed 's/zookeeper-//; s/.jar$//')"
fi
