#!/usr/bin/env bash
# Installs every store server the lease-driver tests start (nothing is started here: each test starts
# its own server on free loopback ports with a temporary data directory):
#   - from Debian (bookworm): etcd-server, etcd-client, zookeeper, redis-server, libcurator-recipes-java
#     (Curator's LeaderLatch jars, for the interop test), openjdk-17-jdk-headless if `javac` is missing,
#     openssl (the Redis TLS tests make their own CA; the Redis Sentinel tests run `redis-server --sentinel`,
#     so the redis-sentinel package is not needed),
#     postgresql-15 if /usr/lib/postgresql/15/bin is missing, pgbouncer (the PostgreSQL lease tests run
#     candidates through it in transaction mode);
#   - Consul 1.8.7, which bookworm lacks, from Debian's bullseye suite: apt runs with its own state,
#     cache and sources list (naming bullseye) under $BALLOT_SERVICES_DIR/apt, `apt-get download`s the
#     .deb and `dpkg-deb -x` unpacks it into $BALLOT_SERVICES_DIR/consul. The machine's apt sources,
#     lists and dpkg database are never touched for it.
# Run as root. Idempotent: does nothing that is already done. Prints where each binary is.
# BALLOT_SERVICES_DIR defaults to /opt/ballot-services; BALLOT_DEBIAN_MIRROR to http://deb.debian.org/debian.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
services_dir="${BALLOT_SERVICES_DIR:-/opt/ballot-services}"
mirror="${BALLOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Other sessions may be running apt at the same moment: wait for the dpkg lock instead of failing.
apt_wait=(-o DPkg::Lock::Timeout=600)

log() { echo "install-services: $*" >&2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

need=()
for pkg in etcd-server etcd-client zookeeper redis-server libcurator-recipes-java pgbouncer; do
  installed "$pkg" || need+=("$pkg")
done
command -v javac >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)

consul_bin="$services_dir/consul/usr/bin/consul"
consul_ok() { [ -x "$consul_bin" ] && "$consul_bin" version 2>/dev/null | grep -q '^Consul v1\.8\.'; }

consul_ok || need_consul=consul
if { [ ${#need[@]} -gt 0 ] || [ -n "${need_consul:-}" ]; } && [ "$(id -u)" -ne 0 ]; then
  log "need root to install: ${need[*]} ${need_consul:-}"
  exit 1
fi

if [ ${#need[@]} -gt 0 ]; then
  log "installing from Debian: ${need[*]}"
  apt-get "${apt_wait[@]}" update -qq
  # On a machine with an init system the packages' own units may start redis or postgresql; the tests
  # neither use nor need them (each test starts its own server).
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_wait[@]}" install -y -qq "${need[@]}" >/dev/null
fi

if ! consul_ok; then
  mkdir -p "$services_dir"
  # One installer at a time per services directory (other worktrees may run this script too).
  exec 9>"$services_dir/.install.lock"
  flock 9
  if ! consul_ok; then
    log "fetching consul from Debian bullseye into $services_dir (private apt state)"
    apt_dir="$services_dir/apt"
    mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main" \
      >"$apt_dir/sources.list"
    private=(
      -o "Dir::State=$apt_dir/state"
      -o "Dir::Cache=$apt_dir/cache"
      -o "Dir::Etc::SourceList=$apt_dir/sources.list"
      -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
      -o "Dir::State::status=/var/lib/dpkg/status"
    )
    apt-get "${private[@]}" update -qq
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    # apt fetches as the unprivileged _apt user where it exists: let it write the download there.
    if id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
    (cd "$work" && apt-get "${private[@]}" download consul >/dev/null)
    deb="$(ls "$work"/consul_*.deb)"
    rm -rf "$services_dir/consul.new"
    dpkg-deb -x "$deb" "$services_dir/consul.new"
    rm -rf "$services_dir/consul"
    mv "$services_dir/consul.new" "$services_dir/consul"
    consul_ok || {
      log "the unpacked consul does not run or is not 1.8.x: $consul_bin"
      exit 1
    }
  fi
  flock -u 9
fi

# Where each binary is (the tests find them the same way: test/helpers/services.ts).
BALLOT_SERVICES_DIR="$services_dir" bash "$here/services-env.sh" --check
