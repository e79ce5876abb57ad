#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Debian packages the tests use, a virtualenv, the project.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
[ -f /usr/share/java/zookeeper.jar ] && [ -x /usr/share/zookeeper/bin/zkCli.sh ] || need_apt+=(zookeeper)
[ -x /usr/lib/zookeeper/bin/cli_mt ] || need_apt+=(zookeeper-bin)
command -v javac >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
command -v nc >/dev/null 2>&1 || need_apt+=(netcat-openbsd)  # the README's `echo mntr | nc ...`
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
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
