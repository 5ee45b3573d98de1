#!/usr/bin/env bash
# The test identity provider, in one run:
# 1. client_credentials tokens per second: jwkit serve --idp vs axa-group's oauth2-mock-server
#    (npm, tests/idp/node_modules; `cd tests/idp && npm ci`), for RS256 and ES256. wrk on
#    loopback, 2 threads, 50 connections, POST /token with Basic client authentication and
#    grant_type=client_credentials&scope=api; every answer must be a 200. RS256 against
#    `openssl speed -multi $(nproc) rsa2048` signs/s (the signature is the bound; target 0.8x).
# 2. Code flows with PKCE through the login page (GET the page, POST the form with its CSRF
#    token and cookie, POST /token with the code and verifier), and refresh grants (each
#    connection rotating its own refresh token), per second, on the directory store and on
#    PostgreSQL (a throwaway cluster, fsync off; Debian's postgresql). wrk, 8 threads of one
#    connection each (each connection runs its own flow, step by step).
# jwkit logs each request to stderr (to /dev/null here).
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
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
# Every step may fail (a server already gone): none may stop the clean-up (set -e).
cleanup() {
  [ ${#PIDS[@]} -gt 0 ] && kill "${PIDS[@]}" 2>/dev/null
  [ -n "$PGBIN" ] && [ -d "$T/pg/data" ] && as_pg "$PGBIN/pg_ctl -D $T/pg/data -m fast stop" >/dev/null 2>&1
  rm -rf "$T"
}
trap 'cleanup || true' EXIT
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
  [ "$alg" = RS256 ] && RS256_RPS=$J_RPS
  kill "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
done
echo
SIGNS=$(openssl speed -multi "$(nproc)" -seconds "$SECS" rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $(NF-1)}')
python3 -c "print(f'openssl speed -multi $(nproc) rsa2048: $SIGNS signs/s; jwkit RS256 tokens/s / openssl signs/s = {$RS256_RPS/$SIGNS:.2f} (target 0.8)')"
echo
echo "oauth2-mock-server $(node -p "require('./tests/idp/node_modules/oauth2-mock-server/package.json').version"), node $(node --version); wrk -t2 -c50 -d${SECS}s"

# ---- 2. code flows and refresh grants, directory store and PostgreSQL ----
VERIFIER=bench-verifier-0123456789-0123456789-0123456789
CHALLENGE=$(printf %s "$VERIFIER" | openssl dgst -sha256 -binary | basenc --base64url | tr -d =)
cat > "$T/flows.toml" <<'TOML'
[[clients]]
id = "bench"
secret = "bench-secret"
redirect_uris = ["http://127.0.0.1:9/cb"]
grants = ["authorization_code", "refresh_token"]
TOML
per_sec() { # URL MODE
  wrk -t8 -c8 -d2s -s benches/idp_flows.lua "$1" -- "$2" 0 "$CHALLENGE" "$VERIFIER" >/dev/null
  wrk -t8 -c8 -d"${SECS}s" -s benches/idp_flows.lua "$1" -- "$2" 0 "$CHALLENGE" "$VERIFIER" | awk '/^RESULT/ {print $2, $3}'
}
PG_PORT=18460
if [ -n "$PGBIN" ]; then
  mkdir -p "$T/pg" && echo secret > "$T/pg/pw"
  [ "$(id -u)" = 0 ] && chown -R postgres "$T/pg" && chmod 755 "$T"
  as_pg "$PGBIN/initdb -D $T/pg/data -U jwkit --pwfile=$T/pg/pw --auth-host=scram-sha-256 --auth-local=scram-sha-256 >/dev/null"
  as_pg "$PGBIN/pg_ctl -D $T/pg/data -l $T/pg/log -w -o '-p $PG_PORT -k $T/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200' start >/dev/null"
  PGPASSWORD=secret "$PGBIN/createdb" -h 127.0.0.1 -p $PG_PORT -U jwkit jwkit
fi
(umask 077 && openssl rand -base64 32 > "$T/store.key")
echo
echo "| store | code flows with PKCE through the login page /s | refresh grants /s | non-2xx/3xx (flows, refresh) |"
echo "|---|---|---|---|"
port=18470
for store in directory postgres; do
  port=$((port + 1))
  if [ "$store" = directory ]; then
    where=(--data-dir "$T/flows-data")
  else
    [ -n "$PGBIN" ] || { echo "| postgres | (no PostgreSQL installed) | | |"; continue; }
    where=(--store "postgres://jwkit:secret@127.0.0.1:$PG_PORT/jwkit" --store-key-file "$T/store.key")
  fi
  "$J" serve --idp --idp-config "$T/flows.toml" --alg ES256 --addr "127.0.0.1:$port" "${where[@]}" 2>/dev/null &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$port/health"
  read -r F_RPS F_BAD < <(per_sec "http://127.0.0.1:$port" flow)
  read -r R_RPS R_BAD < <(per_sec "http://127.0.0.1:$port" refresh)
  echo "| $store | $F_RPS | $R_RPS | $F_BAD, $R_BAD |"
  kill "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
done
echo
echo "wrk -t8 -c8 -d${SECS}s (one connection per thread, each running its own flows); ES256; PostgreSQL $("$PGBIN/postgres" --version 2>/dev/null | awk '{print $3}') with fsync off"
