#!/usr/bin/env bash
# resign --scan over a large capture, side by side in one run with the read/write floor
# (`cat FILE > OUT`) and with ripgrep counting the same token pattern (`rg -c`):
#  1. plain: JSON lines of request/response pairs, 1,000 tokens in SIZE_MIB;
#  2. base64: the same, with a tenth of the response bodies base64-encoded (bodyBase64), so
#     tokens sit inside encoded bodies too.
# Usage: benches/resign_capture.sh [SIZE_MIB]   (default 1024; needs 4x that in /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}
source benches/compare.sh
command -v rg >/dev/null || { echo "ripgrep is needed (apt-get install ripgrep)" >&2; exit 2; }
J=$(release_jwkit)
K=$PWD/tests/vectors/keys
T=$COMPARE_TMP

make_capture() { # out b64
  python3 - "$SIZE" "$1" "$2" <<'PY'
import base64, hashlib, hmac, json, sys
size_mib, path, b64 = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
def token(i):
    payload = enc(json.dumps({"sub": f"user-{i}", "iat": 1700000000, "exp": 1700003600}).encode())
    sig = enc(hmac.new(b"k" * 32, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{sig}"
filler = json.dumps({"items": [{"id": n, "name": f"item {n}", "price": "12.50", "tags": ["a.b", "c"]} for n in range(8)]})
lines_total = size_mib * 1024 * 1024 // 900
every = max(1, lines_total // 500)  # two tokens per such line: 1,000 in all
with open(path, "w") as f:
    for n in range(lines_total):
        has_token = n % every == 0
        body = json.dumps({"access_token": token(n), "expires_in": 3600}) if has_token else filler
        req = {"method": "GET", "path": f"/api/items?page={n}", "headers": {"Accept": "application/json"}}
        if has_token:
            req["headers"]["Authorization"] = "Bearer " + token(n + 1)
        resp = {"status": 200, "headers": {"Content-Type": "application/json"}}
        if b64 and n % 10 == 0:
            resp["bodyBase64"] = base64.b64encode(body.encode()).decode()
        else:
            resp["body"] = body
        f.write(json.dumps({"request": req, "response": resp}) + "\n")
PY
}

run_case() { # label file
  local file=$2 bytes
  bytes=$(stat -c %s "$file")
  hyperfine -N --warmup 1 --runs 5 --export-json "$T/r.json" \
    "sh -c 'cat $file > $T/cat.out'" \
    "rg -c 'ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' $file" \
    "$J resign --scan $file --secret-file $T/secret --out $T/jwkit.out --force" >/dev/null 2>"$T/err"
  python3 - "$T/r.json" "$bytes" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
size = int(sys.argv[2])
cat, rg, jw = (x["median"] for x in r)
gb = lambda s: size / s / 1e9
print(f"| {sys.argv[3]} | {size / 2**20:.0f} MiB | {gb(cat):.2f} GB/s | {gb(rg):.2f} GB/s | {gb(jw):.2f} GB/s | {cat / jw:.2f} |")
PY
}

printf 'k%.0s' $(seq 32) > "$T/secret"
make_capture "$T/plain.jsonl" 0
make_capture "$T/b64.jsonl" 1
"$J" resign --scan "$T/b64.jsonl" --secret-file "$T/secret" --out "$T/check.out" 2>"$T/summary"
echo "## resign --scan over a capture (1,000 tokens in each)"
echo
echo "| input | size | cat > out | rg -c | jwkit resign --scan | jwkit / cat |"
echo "|---|---|---|---|---|---|"
run_case "plain JSON lines" "$T/plain.jsonl"
run_case "a tenth of bodies base64" "$T/b64.jsonl"
echo
echo "base64 run: $(cat "$T/summary")"
echo "$(rg --version | head -1); $(nproc) cores"
