#!/usr/bin/env bash
# Runs one integration test many times in a row while `stress` keeps every core busy, and counts
# the passes: a test that depends on timing fails here first. Not part of CI (it takes minutes).
# Usage: benches/flaky.sh [RUNS] [TEST]   (default: 50 runs of serve::expiry_token_issuing_and_rotation)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-50}
TEST=${2:-serve::expiry_token_issuing_and_rotation}
command -v stress >/dev/null || { echo "stress is needed (apt-get install stress)" >&2; exit 2; }
BIN=$(cargo test --test cli --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
exe = [m["executable"] for m in map(json.loads, sys.stdin)
       if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cli" and m.get("executable")]
print(exe[-1])')
stress --cpu "$(nproc)" --timeout 3600 >/dev/null 2>&1 &
STRESS=$!
trap 'kill $STRESS 2>/dev/null' EXIT
pass=0
fail=0
for i in $(seq "$RUNS"); do
  if "$BIN" "$TEST" --exact --quiet >/tmp/flaky.$$.log 2>&1; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "run $i failed:" >&2
    tail -20 /tmp/flaky.$$.log >&2
  fi
done
rm -f /tmp/flaky.$$.log
echo "$TEST under stress --cpu $(nproc): $pass passed, $fail failed of $RUNS"
[ "$fail" -eq 0 ]
