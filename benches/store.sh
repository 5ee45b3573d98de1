#!/usr/bin/env bash
# One replica of jwkit serve on the PostgreSQL store vs one on the directory store, in the same
# run: GET /.well-known/jwks.json throughput (wrk, 2 threads, 50 connections; the PostgreSQL
# store must not be on the read path: target at least 0.9x the directory store) and upload
# latency (wrk, one thread, 4 connections, each POST a new Ed25519 key; p50 and p99 from wrk's
# latency distribution). Both stores are durable: the directory fsyncs each key, PostgreSQL runs
# with its defaults (fsync on, synchronous_commit on). The cluster is made here, in a temporary
# directory, as the user postgres when run as root.
# Usage: benches/store.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
source benches/compare.sh
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL is needed (apt-get install postgresql)" >&2; exit 2; }
J=$(release_jwkit)
T=$COMPARE_TMP
chmod 755 "$T"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PW=bench-password
echo "$PW" > "$T/pw"
mkdir "$T/pg"
chmod 700 "$T/pg"
[ "$(id -u)" = 0 ] && chown postgres "$T/pw" "$T/pg"
PORT=18090
as_pg "$PGBIN/initdb" -D "$T/pg" -U jwkit --pwfile="$T/pw" --auth-host=scram-sha-256 --auth-local=trust >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$T/pg" -l "$T/pg/log" -w -o "-p $PORT -k $T/pg -c listen_addresses=127.0.0.1" start >/dev/null
DB="postgres://jwkit:$PW@127.0.0.1:$PORT/postgres"
export JWKIT_HOME=$T/home JWKIT_UPLOAD_TOKEN=bench-token
"$J" serve --addr 127.0.0.1:18091 --data-dir "$T/data" 2>/dev/null &
DIR_PID=$!
"$J" serve --addr 127.0.0.1:18092 --store "$DB" 2>/dev/null &
PG_PID=$!
trap 'kill $DIR_PID $PG_PID 2>/dev/null; as_pg "$PGBIN/pg_ctl" -D "$T/pg" -m immediate stop >/dev/null 2>&1; rm -rf "$T"' EXIT
for port in 18091 18092; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done
# The same 10 keys in both stores (the read benchmark's document).
for i in $(seq 10); do
  "$J" generate-key --type ec --public-out "$T/k$i.pub" --out "$T/k$i.pem" 2>/dev/null
  JWK=$("$J" key public "$T/k$i.pem" -f jwk)
  for port in 18091 18092; do
    curl -sf -H "Authorization: Bearer bench-token" --data-binary "$JWK" "http://127.0.0.1:$port/jwks" >/dev/null
  done
done
cmp <(curl -sf http://127.0.0.1:18091/.well-known/jwks.json) <(curl -sf http://127.0.0.1:18092/.well-known/jwks.json)
rps() {
  wrk -t2 -c50 -d2s "$1" >/dev/null
  wrk -t2 -c50 -d"${SECS}s" "$1" | awk '/Requests\/sec/ {print $2}'
}
DIR_RPS=$(rps http://127.0.0.1:18091/.well-known/jwks.json)
PG_RPS=$(rps http://127.0.0.1:18092/.well-known/jwks.json)
# Upload bodies: a new public Ed25519 JWK per request, more than a run can use.
python3 - "$T/bodies" <<'PY'
import base64, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
with open(sys.argv[1], "w") as f:
    for i in range(60000):
        x = Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        b = base64.urlsafe_b64encode(x).rstrip(b"=").decode()
        f.write('{"kty":"OKP","crv":"Ed25519","x":"%s"}\n' % b)
PY
cat > "$T/upload.lua" <<'LUA'
local bodies, i = {}, 0
bad = 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
function request()
  i = i + 1
  return wrk.format("POST", "/jwks", {
    ["Authorization"] = "Bearer bench-token",
    ["Content-Type"] = "application/json",
  }, bodies[i])
end
function response(status)
  if status ~= 201 then bad = bad + 1 end
end
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
function done(summary, latency)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format("UPLOAD %d %.2f %.2f %d\n", summary.requests,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, b))
end
LUA
upload() {
  wrk -t1 -c4 -d"${SECS}s" -s "$T/upload.lua" "$1" -- "$T/bodies" | awk '/^UPLOAD/ {print $2, $3, $4, $5}'
}
read -r DIR_N DIR_P50 DIR_P99 DIR_BAD < <(upload http://127.0.0.1:18091)
read -r PG_N PG_P50 PG_P99 PG_BAD < <(upload http://127.0.0.1:18092)
echo "| store | GET requests/s | vs directory | uploads | upload p50 | upload p99 | not 201 |"
echo "|---|---|---|---|---|---|---|"
python3 -c "
print(f'| directory | {$DIR_RPS:.0f} | 1.00 | $DIR_N | $DIR_P50 ms | $DIR_P99 ms | $DIR_BAD |')
print(f'| PostgreSQL | {$PG_RPS:.0f} | {$PG_RPS/$DIR_RPS:.2f} | $PG_N | $PG_P50 ms | $PG_P99 ms | $PG_BAD |')"
echo
echo "10 keys served; $("$PGBIN/postgres" --version); GET: wrk -t2 -c50 -d${SECS}s; upload: wrk -t1 -c4 -d${SECS}s"
