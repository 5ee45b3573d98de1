#!/usr/bin/env bash
# resign --scan speed, side by side with openssl in one run:
#  1. bulk re-signing of distinct tokens on one thread: RS256 (RSA-2048) vs
#     `openssl speed -seconds 3 rsa2048` sign/s; ES256 and EdDSA tokens/s (with openssl's
#     ecdsap256 / ed25519 sign/s for scale);
#  2. a large input with few tokens: MB/s passed through, and peak RSS.
# Usage: benches/resign.sh [SIZE_MIB]   (default 1024: a 1 GiB input; needs that much in /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}
source benches/compare.sh
J=$(release_jwkit)
K=$PWD/tests/vectors/keys
T=$COMPARE_TMP

# N distinct HS256 tokens, one per line, each inside a little JSON (as in a log).
tokens() {
  python3 - "$1" <<'PY'
import base64, hashlib, hmac, json, sys
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
key = b"k" * 32
for i in range(int(sys.argv[1])):
    payload = b64(json.dumps({"sub": f"user-{i}", "iat": 1700000000 + i, "exp": 1700003600 + i}).encode())
    sig = b64(hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    print(json.dumps({"n": i, "authorization": f"Bearer {header}.{payload}.{sig}"}))
PY
}

rate() { # tokens-file count key -> tokens/s (median of 5 runs)
  hyperfine -N --warmup 1 --runs 5 --export-json "$T/r.json" \
    "$J resign --scan $1 --threads 1 --key-file $3 --out $T/out.txt --force" >/dev/null 2>&1
  python3 -c "import json,sys; r=json.load(open('$T/r.json'))['results'][0]; print(f\"{$2/r['median']:.0f}\")"
}

tokens 2000 > "$T/rs.txt"
tokens 20000 > "$T/ec.txt"
"$J" resign --scan "$T/rs.txt" --key-file "$K/rfc7515-A.2.private.pem" --out "$T/check.txt" 2>"$T/err" && grep -q "re-signed 2000" "$T/err"
OS_RSA=$(openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $(NF-1)}')
OS_EC=$(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/ecdsa \(nistp256\)/ {print $(NF-1)}')
OS_ED=$(openssl speed -seconds 3 ed25519 2>/dev/null | awk '/EdDSA \(Ed25519\)/ {print $(NF-1)}')
RS=$(rate "$T/rs.txt" 2000 "$K/rfc7515-A.2.private.pem")
ES=$(rate "$T/ec.txt" 20000 "$K/rfc7515-A.3.private.pem")
ED=$(rate "$T/ec.txt" 20000 "$K/rfc8037-A.1.private.pem")
echo "## Bulk re-signing, 1 thread"
echo
echo "| alg | jwkit tokens/s | openssl sign/s (1 core) | ratio |"
echo "|---|---|---|---|"
echo "| RS256 (RSA-2048) | $RS | $OS_RSA | $(python3 -c "print(f'{$RS/$OS_RSA:.2f}')") |"
echo "| ES256 | $ES | $OS_EC | $(python3 -c "print(f'{$ES/$OS_EC:.2f}')") |"
echo "| EdDSA | $ED | $OS_ED | $(python3 -c "print(f'{$ED/$OS_ED:.2f}')") |"

# A large capture with few tokens: one token per MiB of JSON-ish filler.
python3 - "$SIZE" "$T/big.txt" "$(head -1 "$T/rs.txt")" <<'PY'
import sys
size_mib, path, tokline = int(sys.argv[1]), sys.argv[2], sys.argv[3]
line = ('{"url":"https://api.example.com/v1.2/items?page=3&q=a.b.c","ts":"2026-11-21T10:00:00.000Z",'
        '"blob":"aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8=","ua":"Mozilla/5.0 (X11; Linux x86_64)"}\n')
block = line * ((1 << 20) // len(line)) + tokline + "\n"
with open(path, "w") as f:
    for _ in range(size_mib):
        f.write(block)
PY
BYTES=$(stat -c %s "$T/big.txt")
/usr/bin/time -f "%e %M" -o "$T/time" "$J" resign --scan "$T/big.txt" --key-file "$K/rfc8037-A.1.private.pem" --out "$T/big.out" 2>"$T/err"
read -r SECS RSS_KB < "$T/time"
cmp -s <(wc -c < "$T/big.txt") <(wc -c < "$T/big.out") || true
echo
echo "## Pass-through, $((BYTES >> 20)) MiB with $SIZE tokens"
echo
echo "| input | time | throughput | peak RSS | tokens |"
echo "|---|---|---|---|---|"
python3 -c "print(f'| {$BYTES/2**20:.0f} MiB | {$SECS:.2f} s | {$BYTES/2**20/$SECS:.0f} MiB/s | {$RSS_KB/1024:.1f} MiB | $(grep -o 're-signed [0-9]*' "$T/err") |')"
rm -f "$T/big.txt" "$T/big.out"
echo
echo "$(openssl version)"
