#!/usr/bin/env bash
# Installs Debian's redis-server for the Redis Streams tests when it is missing.
# Needs root (as on the CI machines); prints what it does.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
echo "==> installing redis-server (Debian package, first run on this machine)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
