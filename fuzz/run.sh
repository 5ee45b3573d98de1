#!/usr/bin/env bash
# Runs fuzz targets for a fixed time each and prints one line per target: executions, coverage,
# and whether it crashed (the crashing input is then in fuzz/artifacts/<target>/).
# Usage: fuzz/run.sh SECONDS [TARGET...]   (default: every target; JOBS=2 runs two at once)
# New inputs go to fuzz/work/<target>/ (not committed); the committed seeds in
# fuzz/corpus/<target>/ are read, never written. Needs nightly and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:?seconds per target}
shift
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo +nightly fuzz list)
JOBS=${JOBS:-1}
mkdir -p work logs
cargo +nightly fuzz build >/dev/null 2>&1 || cargo +nightly fuzz build
one() {
  local t=$1
  mkdir -p "work/$t"
  local rc=0
  cargo +nightly fuzz run "$t" "work/$t" "corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=4096 \
    -timeout=20 > "logs/$t.log" 2>&1 || rc=$?
  local runs cov
  runs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "logs/$t.log" | tail -1 || true)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "logs/$t.log" | tail -1 || true)
  if [ "$rc" -eq 0 ]; then
    echo "$t: ok: ${runs:-no summary}s, ${cov:-no coverage line}"
  else
    echo "$t: CRASH (exit $rc); see fuzz/logs/$t.log and fuzz/artifacts/$t/"
    return 1
  fi
}
status=0
running=0
for t in "${TARGETS[@]}"; do
  one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
