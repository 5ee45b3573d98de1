#!/usr/bin/env bash
# Memory of jwkit serve --idp over 100,000 logins: code flows with PKCE through the login page
# (benches/idp_flows.lua; each leaves a login session, a used code, an access token's userinfo
# and a refresh token behind), on the directory store (records in memory).
#   1. default lifetimes (session 1h, refresh 1d, access 15m, code 1m): resident memory after
#      (target: under 200 MiB);
#   2. lifetimes of 20 s: resident memory after, and again once the lifetimes and a pruning
#      (every 60 s) have passed: memory follows the live records, not the history.
# Usage: benches/idp_memory.sh [LOGINS]
set -euo pipefail
cd "$(dirname "$0")/.."
LOGINS=${1:-100000}
source benches/compare.sh
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
J=$(release_jwkit)
T=$COMPARE_TMP
PID=
trap 'kill $PID 2>/dev/null || true; rm -rf "$T"' EXIT
VERIFIER=bench-verifier-0123456789-0123456789-0123456789
CHALLENGE=$(printf %s "$VERIFIER" | openssl dgst -sha256 -binary | basenc --base64url | tr -d =)
mib() { awk -v k="$1:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
run() { # NAME TOKENS_TOML
  cat > "$T/idp.toml" <<TOML
$2
[[clients]]
id = "bench"
secret = "bench-secret"
redirect_uris = ["http://127.0.0.1:9/cb"]
grants = ["authorization_code", "refresh_token"]
TOML
  rm -rf "$T/data"
  "$J" serve --idp --idp-config "$T/idp.toml" --alg ES256 --addr 127.0.0.1:18480 --data-dir "$T/data" 2>/dev/null &
  PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18480/health && break; sleep 0.1; done
  local start; start=$(mib VmRSS)
  local per=$((LOGINS / 8))
  rm -f "$T/done"
  wrk -t8 -c8 -d3600s -s benches/idp_flows.lua http://127.0.0.1:18480 -- flow "$per" "$CHALLENGE" "$VERIFIER" "$T/done" > "$T/wrk.out" &
  local W=$!
  until [ "$(wc -l < "$T/done" 2>/dev/null || echo 0)" -ge 8 ]; do sleep 0.5; done
  kill -INT $W; wait $W || true
  read -r RATE BAD DONE < <(awk '/^RESULT/ {print $2, $3, $4}' "$T/wrk.out")
  echo "| $1 | $DONE logins ($RATE/s, $BAD failed) | $start MiB | $(mib VmRSS) MiB | $(mib VmHWM) MiB |"
}
echo "| lifetimes | logins | resident at start | resident after | peak |"
echo "|---|---|---|---|---|"
run "defaults (session 1h, refresh 1d)" ""
kill $PID; wait $PID 2>/dev/null || true
run "20 s" '[tokens]
access = "20s"
id = "20s"
refresh = "20s"
code = "10s"
session = "20s"'
sleep 85
echo
echo "20 s lifetimes, 85 s later (the lifetimes and one pruning passed): resident $(mib VmRSS) MiB"
