#!/usr/bin/env bash
# Runs the README's test command N times in a row (default 5) on a clean clone of HEAD while two busy
# loops hold both cores, and stops at the first failure: a test that fails under load is a defect.
#   bash scripts/test-under-load.sh [N]
# Each run's output goes to $LOGS/run<i>.log (default: a temporary directory, printed at the start).
set -uo pipefail
runs=${1:-5}
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
clone=$(mktemp -d /tmp/ballot-under-load-XXXXXX)
logs=${LOGS:-$(mktemp -d /tmp/ballot-under-load-logs-XXXXXX)}
hogs=()
cleanup() {
  for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null; done
  rm -rf "$clone"
}
trap cleanup EXIT
git clone -q "$repo" "$clone" && cd "$clone" || exit 1
echo "commit $(git rev-parse --short HEAD); logs in $logs"
bash scripts/install-deps.sh > "$logs/install.log" 2>&1 || { echo "install failed: $logs/install.log"; exit 1; }
for _ in 1 2; do
  node -e 'for (;;) {}' &
  hogs+=("$!")
done
for i in $(seq "$runs"); do
  t0=$(date +%s)
  npm test > "$logs/run$i.log" 2>&1
  rc=$?
  summary=$(grep -E '^# (tests|pass|fail) ' "$logs/run$i.log" | tr '\n' ' ')
  echo "run $i: exit $rc, $(($(date +%s) - t0)) s, ${summary}load $(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$rc" -ne 0 ] && exit "$rc"
done
