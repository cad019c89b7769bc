#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to run every ballot test: system packages for the
# network-namespace tests (iproute2, nftables), util-linux's setpriv (for `ballot exec`) and strace (to
# see that a state save syncs its directory), Chromium (the dashboard's browser tests drive Debian's build
# through playwright-core, which cannot download a browser of its own here), the store servers the
# lease-driver tests start (scripts/install-services.sh), then the npm dependencies. Safe to run again;
# does nothing already done.
set -euo pipefail

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v strace >/dev/null 2>&1 || need+=(strace)
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cd "$(dirname "$0")/.."
bash scripts/install-services.sh
# `npm install`, not `npm ci`: the registry this project is built against does not carry every
# platform's optional binary (e.g. @biomejs/cli-darwin-x64), so the lockfile cannot list them and
# `npm ci` refuses it as out of sync. `npm install` still installs the locked versions.
npm install --no-audit --no-fund
