#!/usr/bin/env bash
# GET /.well-known/jwks.json holding 10 keys: jwkit serve vs nginx serving the same document as
# a static file, each loaded by wrk on loopback in the same run (2 threads, 50 connections,
# 10 s, after a 2 s warm-up), over plain HTTP and over HTTPS (both servers with the same P-256
# certificate, made here with openssl). jwkit logs every request (to /dev/null here); nginx's
# access log is off, which favours nginx.
# Usage: benches/serve.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
source benches/compare.sh
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
command -v nginx >/dev/null || { echo "nginx is needed (apt-get install nginx)" >&2; exit 2; }
J=$(release_jwkit)
T=$COMPARE_TMP
export JWKIT_HOME=$T/home JWKIT_UPLOAD_TOKEN=bench-token
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
"$J" serve --addr 127.0.0.1:18081 --data-dir "$T/data" 2>/dev/null &
SERVE=$!
SERVE_TLS=
trap 'kill $SERVE $SERVE_TLS 2>/dev/null; [ -f "$T/nginx.pid" ] && kill "$(cat "$T/nginx.pid")" 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:18081/health >/dev/null && break; sleep 0.1; done
for i in $(seq 10); do "$J" generate-key --type ec --upload http://127.0.0.1:18081 >/dev/null 2>&1; done
# The HTTPS server reads the same store, now that it holds the keys.
"$J" serve --addr 127.0.0.1:18083 --data-dir "$T/data" --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" 2>/dev/null &
SERVE_TLS=$!
for _ in $(seq 50); do curl -sf --cacert "$T/cert.pem" https://127.0.0.1:18083/health >/dev/null && break; sleep 0.1; done
cmp <(curl -sf http://127.0.0.1:18081/.well-known/jwks.json) \
  <(curl -sf --cacert "$T/cert.pem" https://127.0.0.1:18083/.well-known/jwks.json)
mkdir -p "$T/www/.well-known"
curl -sf http://127.0.0.1:18081/.well-known/jwks.json > "$T/www/.well-known/jwks.json"
KEYS=$(python3 -c "import json;print(len(json.load(open('$T/www/.well-known/jwks.json'))['keys']))")
cat > "$T/nginx.conf" <<NGX
worker_processes auto;
pid $T/nginx.pid;
error_log $T/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18082;
    location = /.well-known/jwks.json {
      root $T/www;
      default_type application/jwk-set+json;
      add_header Cache-Control "public, max-age=300";
    }
  }
  server {
    listen 127.0.0.1:18084 ssl;
    ssl_certificate $T/cert.pem;
    ssl_certificate_key $T/key.pem;
    location = /.well-known/jwks.json {
      root $T/www;
      default_type application/jwk-set+json;
      add_header Cache-Control "public, max-age=300";
    }
  }
}
NGX
nginx -c "$T/nginx.conf"
sleep 0.5
rps() {
  wrk -t2 -c50 -d2s "$1" >/dev/null
  wrk -t2 -c50 -d"${SECS}s" "$1" | awk '/Requests\/sec/ {print $2}'
}
J_RPS=$(rps http://127.0.0.1:18081/.well-known/jwks.json)
N_RPS=$(rps http://127.0.0.1:18082/.well-known/jwks.json)
JS_RPS=$(rps https://127.0.0.1:18083/.well-known/jwks.json)
NS_RPS=$(rps https://127.0.0.1:18084/.well-known/jwks.json)
echo "| server | HTTP requests/s | vs nginx | HTTPS requests/s | vs nginx |"
echo "|---|---|---|---|---|"
python3 -c "print(f'| jwkit serve | {$J_RPS:.0f} | {$J_RPS/$N_RPS:.2f} | {$JS_RPS:.0f} | {$JS_RPS/$NS_RPS:.2f} |'); print(f'| nginx | {$N_RPS:.0f} | 1.00 | {$NS_RPS:.0f} | 1.00 |')"
echo
echo "$KEYS keys, $(stat -c %s "$T/www/.well-known/jwks.json") bytes; $(nginx -v 2>&1); wrk -t2 -c50 -d${SECS}s"
