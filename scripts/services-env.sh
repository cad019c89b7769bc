#!/usr/bin/env bash
# Where each store server's binaries are, as the tests look for them (test/helpers/services.ts reads the
# same variables and defaults). Prints `export NAME=value` lines: `eval "$(bash scripts/services-env.sh)"`.
# A variable already set in the environment wins. With --check, exits 1 naming whatever is missing.
set -euo pipefail
services_dir="${BALLOT_SERVICES_DIR:-/opt/ballot-services}"
java_dir=/usr/share/java
check=false
[ "${1:-}" = --check ] && check=true
missing=()

emit() { # NAME VALUE PATH-TO-CHECK...
  local name="$1" value="$2"
  shift 2
  echo "export $name=$value"
  for p in "$@"; do [ -e "$p" ] || missing+=("$name: $p")
  done
}

emit BALLOT_ETCD "${BALLOT_ETCD:-/usr/bin/etcd}" "${BALLOT_ETCD:-/usr/bin/etcd}"
emit BALLOT_ETCDCTL "${BALLOT_ETCDCTL:-/usr/bin/etcdctl}" "${BALLOT_ETCDCTL:-/usr/bin/etcdctl}"
emit BALLOT_REDIS_SERVER "${BALLOT_REDIS_SERVER:-/usr/bin/redis-server}" "${BALLOT_REDIS_SERVER:-/usr/bin/redis-server}"
emit BALLOT_PG_BIN "${BALLOT_PG_BIN:-/usr/lib/postgresql/15/bin}" "${BALLOT_PG_BIN:-/usr/lib/postgresql/15/bin}/postgres"
emit BALLOT_PGBOUNCER "${BALLOT_PGBOUNCER:-/usr/sbin/pgbouncer}" "${BALLOT_PGBOUNCER:-/usr/sbin/pgbouncer}"
emit BALLOT_CONSUL "${BALLOT_CONSUL:-$services_dir/consul/usr/bin/consul}" "${BALLOT_CONSUL:-$services_dir/consul/usr/bin/consul}"
emit BALLOT_JAVA "${BALLOT_JAVA:-/usr/bin/java}" "${BALLOT_JAVA:-/usr/bin/java}"
emit BALLOT_JAVAC "${BALLOT_JAVAC:-/usr/bin/javac}" "${BALLOT_JAVAC:-/usr/bin/javac}"
zk_jars=(zookeeper.jar zookeeper-jute.jar slf4j-api.jar slf4j-simple.jar)
curator_jars=(curator-recipes.jar curator-framework.jar curator-client.jar guava.jar "${zk_jars[@]}")
zk_cp="$(printf "$java_dir/%s:" "${zk_jars[@]}")"
curator_cp="$(printf "$java_dir/%s:" "${curator_jars[@]}")"
emit BALLOT_ZOOKEEPER_CP "${BALLOT_ZOOKEEPER_CP:-${zk_cp%:}}" ${BALLOT_ZOOKEEPER_CP:-$(printf "$java_dir/%s " "${zk_jars[@]}")}
emit BALLOT_CURATOR_CP "${BALLOT_CURATOR_CP:-${curator_cp%:}}" ${BALLOT_CURATOR_CP:-$(printf "$java_dir/%s " "${curator_jars[@]}")}

if $check && [ ${#missing[@]} -gt 0 ]; then
  printf 'services-env: missing %s\n' "${missing[@]}" >&2
  exit 1
fi
