#!/usr/bin/env bash
# client_credentials tokens per second: jwkit serve --idp vs axa-group's oauth2-mock-server
# (npm, tests/idp/node_modules; `cd tests/idp && npm ci`), in the same run, for RS256 and
# ES256. wrk on loopback, 2 threads, 50 connections, POST /token with Basic client
# authentication and grant_type=client_credentials&scope=api; every answer must be a 200.
# jwkit logs each request to stderr (to /dev/null here). Target: jwkit at least 5x.
# Usage: benches/idp.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
source benches/compare.sh
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
[ -d tests/idp/node_modules/oauth2-mock-server ] || { echo "run: cd tests/idp && npm ci" >&2; exit 2; }
J=$(release_jwkit)
T=$COMPARE_TMP
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$T"' EXIT
cat > "$T/idp.toml" <<'TOML'
[[clients]]
id = "bench"
secret = "bench-secret"
grants = ["client_credentials"]
TOML
cat > "$T/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=api"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic YmVuY2g6YmVuY2gtc2VjcmV0"
bad = 0
function response(status) if status ~= 200 then bad = bad + 1 end end
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
function done(summary)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format("RESULT %.0f %d\n", summary.requests / (summary.duration / 1e6), b))
end
LUA
wait_for() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no server at $1" >&2; exit 1; }
rate() {
  wrk -t2 -c50 -d2s -s "$T/post.lua" "$1" >/dev/null
  wrk -t2 -c50 -d"${SECS}s" -s "$T/post.lua" "$1" | awk '/^RESULT/ {print $2, $3}'
}
echo "| alg | jwkit serve --idp tokens/s | oauth2-mock-server tokens/s | jwkit / mock | non-200 (jwkit, mock) |"
echo "|---|---|---|---|---|"
port=18400
for alg in RS256 ES256; do
  port=$((port + 2))
  "$J" serve --idp --idp-config "$T/idp.toml" --alg "$alg" --addr "127.0.0.1:$port" --data-dir "$T/data-$alg" 2>/dev/null &
  PIDS+=($!)
  (cd tests/idp && exec node mock-peer.mjs $((port + 1)) "$alg") >/dev/null 2>&1 &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$port/health"
  wait_for "http://127.0.0.1:$((port + 1))/.well-known/openid-configuration"
  read -r J_RPS J_BAD < <(rate "http://127.0.0.1:$port/token")
  read -r M_RPS M_BAD < <(rate "http://127.0.0.1:$((port + 1))/token")
  python3 -c "print(f'| $alg | $J_RPS | $M_RPS | {$J_RPS/$M_RPS:.1f} | $J_BAD, $M_BAD |')"
  kill "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
done
echo
echo "oauth2-mock-server $(node -p "require('./tests/idp/node_modules/oauth2-mock-server/package.json').version"), node $(node --version); wrk -t2 -c50 -d${SECS}s"
