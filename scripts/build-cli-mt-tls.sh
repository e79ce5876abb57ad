#!/usr/bin/env bash
# ZooKeeper 3.8's C client shell (cli_mt) built WITH OpenSSL, which Debian's zookeeper-bin lacks
# (its cli_mt cannot speak TLS). Sources: Debian's own zookeeper source package (the same 3.8.0 the
# tests run), fetched through a private deb-src list so the machine's apt sources are left alone.
# Result: .cache/zk-c-client-tls/cli_mt, rebuilt only when this script changes.
#   - zookeeper.jute.{c,h} are generated with the jute compiler in Debian's zookeeper-jute.jar;
#   - CMake target `cli` is cli_mt (THREADED, sync API); Cyrus SASL off, OpenSSL on;
#   - OpenSSL 3 has no FIPS_mode(): 3.8.0's zookeeper.c calls it only to log, so it is defined as
#     EVP_default_properties_is_fips_enabled(NULL) on the compiler's command line (no source patch).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/zk-c-client-tls
stamp="$out/.built-$(sha1sum "$0" | cut -c1-12)"
[ -f "$stamp" ] && [ -x "$out/cli_mt" ] && exit 0
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
[ -f /usr/share/java/zookeeper-jute.jar ] || need+=(libzookeeper-java)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
work=$(mktemp -d /tmp/zk-c-tls.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
mkdir -p "$work/parts" "$work/lists/partial" "$work/src"
for suite in "debian bookworm bookworm-updates" "debian-security bookworm-security"; do
  set -- $suite
  printf 'Types: deb-src\nURIs: http://deb.debian.org/%s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' \
    "$1" "${*:2}"
done > "$work/parts/src.sources"
apt_opts=(-o APT::Sandbox::User=root -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts" -o "Dir::State::Lists=$work/lists")
apt-get "${apt_opts[@]}" update -qq
(cd "$work/src" && apt-get "${apt_opts[@]}" source -qq --download-only zookeeper >/dev/null 2>&1 \
  && dpkg-source -x ./zookeeper_*.dsc zk >/dev/null 2>&1)
c="$work/src/zk/zookeeper-client/zookeeper-client-c"
mkdir -p "$c/generated" "$c/build"
(cd "$c/generated" && java -cp /usr/share/java/zookeeper-jute.jar org.apache.jute.compiler.generated.Rcc \
  -l c ../../../zookeeper-jute/src/main/resources/zookeeper.jute >/dev/null)
(cd "$c/build" && cmake .. -DWANT_CPPUNIT=OFF -DWITH_CYRUS_SASL=OFF -DWITH_OPENSSL=ON \
  "-DCMAKE_C_FLAGS=-D'FIPS_mode()=EVP_default_properties_is_fips_enabled(NULL)'" >cmake.log 2>&1 \
  && grep -q "will build with SSL support" cmake.log && make -j2 cli >make.log)
mkdir -p "$out"
rm -f "$out"/.built-*
cp "$c/build/cli" "$out/cli_mt"
touch "$stamp"
echo "setup: built a TLS-capable cli_mt (ZooKeeper $(cd "$work/src/zk" && sed -n 's/.*<version>\(3\.[0-9.]*\)<\/version>.*/\1/p' pom.xml | head -1)) in $out"
