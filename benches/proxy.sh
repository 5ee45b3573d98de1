#!/usr/bin/env bash
# jwkit proxy against nginx proxy_pass, in the same run, both in front of the same upstream (an
# nginx of its own answering 200 "ok"): wrk, 2 threads, 32 connections, SECONDS each.
#   pass-through: requests without tokens, jwkit proxy vs nginx proxy_pass (target >= 0.7x);
#   new tokens: every request carries a token never seen before, re-signed with ES256
#     (target >= 0.5x the pass-through rate);
#   cache hits: every request carries the same token (target >= 0.8x the pass-through rate);
#   latency added at half the proxy's maximum rate: p50 and p99 through jwkit proxy minus
#     those straight to the upstream, with wrk pacing each connection (delay()).
# Usage: benches/proxy.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
source benches/compare.sh
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
[ -x /usr/sbin/nginx ] || { echo "nginx is needed (apt-get install nginx)" >&2; exit 2; }
J=$(release_jwkit)
T=$COMPARE_TMP
UP=18201 NGINX=18202 PROXY=18203
# Two nginx instances: the upstream, and nginx as the proxy in front of it. Each proxy is a
# process of its own, apart from the upstream, as in a deployment: an nginx that proxied to
# server blocks of its own workers would hand requests over inside one process (no socket
# wake-up of another process), which no separate proxy can do.
nginx_conf() { # DIR BODY
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<EOF
worker_processes 2;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/body; proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
  $2
}
EOF
  /usr/sbin/nginx -c "$1/nginx.conf" -p "$1"
}
nginx_conf "$T/upstream" "server { listen 127.0.0.1:$UP; location / { return 200 \"ok\"; } }"
nginx_conf "$T/nginx" "upstream app { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NGINX;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
export JWKIT_HOME=$T/home
"$J" proxy --listen 127.0.0.1:$PROXY --upstream http://127.0.0.1:$UP \
  --key-file tests/vectors/keys/rfc7515-A.3.private.pem --alg ES256 2>/dev/null &
PID=$!
stop_all() {
  kill $PID 2>/dev/null || true
  for d in "$T/nginx" "$T/upstream"; do /usr/sbin/nginx -c "$d/nginx.conf" -p "$d" -s stop 2>/dev/null || true; done
  rm -rf "$T"
}
trap stop_all EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PROXY/" >/dev/null && break; sleep 0.1; done
# Tokens made in the Lua script: HS256-shaped tokens (the proxy re-signs whatever alg a token
# has; the new signature is ES256), a new one per request or always the same one. The script
# must cost wrk little, since wrk shares the two cores with the proxy: no base64 encoder runs
# per request (see the script's first lines).
cat > "$T/tokens.lua" <<'LUA'
-- Tokens made cheaply: the payload {"sub":"<thread><9 digits>","exp":4102444800  } is laid out
-- in whole 3-byte groups, so its base64url is the encoded fixed parts around three 4-character
-- codes, one per 3 digits, looked up in a table made once: a new token per request costs wrk
-- three lookups and a concatenation, not a base64 encoder in Lua.
local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function enc(s) -- whole 3-byte groups only
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + b * 256 + c
    for _, d in ipairs({262144, 4096, 64, 1}) do
      local k = math.floor(n / d) % 64 + 1
      out[#out + 1] = b64:sub(k, k)
    end
  end
  return table.concat(out)
end
local groups = {}
for n = 0, 999 do groups[n] = enc(string.format("%03d", n)) end
local head = "eyJhbGciOiJIUzI1NiJ9."
local tail = enc('","exp":4102444800  }') .. ".c2ln"
local mode, i, id, pace, prefix, same = "new", 0, 0, 0, "", ""
function setup(thread) id = id + 1; thread:set("id", id) end
function init(args)
  mode = args[1] or "new"; pace = tonumber(args[2] or "0")
  -- Each run starts its count from the clock (a million apart per second): the measured run
  -- never repeats the warm-up's tokens, which the proxy's cache would answer.
  i = (os.time() % 1000) * 1000000
  prefix = head .. enc('{"sub":"' .. tostring(id % 10))
  same = "Bearer " .. prefix .. groups[0] .. groups[0] .. groups[0] .. tail
end
function delay() return pace end
function request()
  if mode == "same" then
    return wrk.format("GET", "/", {["Authorization"] = same})
  end
  i = i + 1
  local token = prefix .. groups[math.floor(i / 1000000) % 1000] .. groups[math.floor(i / 1000) % 1000] .. groups[i % 1000] .. tail
  return wrk.format("GET", "/", {["Authorization"] = "Bearer " .. token})
end
LUA
rps() {
  wrk -t2 -c32 -d2s "$@" >/dev/null
  wrk -t2 -c32 -d"${SECS}s" "$@" | awk '/Requests\/sec/ {print $2}'
}
NGINX_RPS=$(rps "http://127.0.0.1:$NGINX/")
PASS_RPS=$(rps "http://127.0.0.1:$PROXY/")
NEW_RPS=$(rps -s "$T/tokens.lua" "http://127.0.0.1:$PROXY/" -- new)
SAME_RPS=$(rps -s "$T/tokens.lua" "http://127.0.0.1:$PROXY/" -- same)
# Half the new-token rate: each connection waits PACE ms between requests (wrk's delay() is
# whole milliseconds), so the rate is set by the number of connections.
PACE=4
CONNS=$(python3 -c "print(max(2, round($NEW_RPS / 2 * $PACE / 1000)))")
lat() {
  wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$T/tokens.lua" "$1" -- new "$PACE" \
    | awk '/^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print p50, p99}'
}
read -r DIRECT_P50 DIRECT_P99 < <(lat "http://127.0.0.1:$UP/")
read -r PROXY_P50 PROXY_P99 < <(lat "http://127.0.0.1:$PROXY/")
ms() { python3 -c "
v='$1'
for u, f in (('us', 0.001), ('ms', 1), ('s', 1000)):
    if v.endswith(u) and (u != 's' or not v.endswith(('us', 'ms'))):
        print(float(v[:-len(u)]) * f); break"; }
echo "| run | requests/s | ratio |"
echo "|---|---|---|"
python3 -c "
n, p, new, same = $NGINX_RPS, $PASS_RPS, $NEW_RPS, $SAME_RPS
print(f'| nginx proxy_pass, no tokens | {n:.0f} | 1.00 |')
print(f'| jwkit proxy, no tokens (pass-through) | {p:.0f} | {p / n:.2f} x nginx (target 0.7) |')
print(f'| jwkit proxy, a new token per request (ES256 re-sign) | {new:.0f} | {new / p:.2f} x pass-through (target 0.5) |')
print(f'| jwkit proxy, the same token (cache hits) | {same:.0f} | {same / p:.2f} x pass-through (target 0.8) |')"
echo
python3 -c "
d50, d99, p50, p99 = $(ms "$DIRECT_P50"), $(ms "$DIRECT_P99"), $(ms "$PROXY_P50"), $(ms "$PROXY_P99")
print(f'latency at half the new-token rate ($CONNS connections, one request each per $PACE ms: {$CONNS * 1000 / $PACE:.0f} requests/s): upstream alone p50 {d50:.2f} ms, p99 {d99:.2f} ms; through jwkit proxy p50 {p50:.2f} ms, p99 {p99:.2f} ms; added p50 {p50 - d50:.2f} ms, p99 {p99 - d99:.2f} ms')"
echo "wrk -t2 -c32 -d${SECS}s; upstream: nginx return 200; $(/usr/sbin/nginx -v 2>&1)"
