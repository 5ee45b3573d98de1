#!/usr/bin/env bash
# verify-jwt speed, side by side in one run:
#  1. whole-process verify of one token with a local public key, vs jwt-cli `jwt decode`;
#  2. --batch over N RS256 tokens (one RSA-2048 key) on 1 and 2 threads, vs
#     `openssl speed -seconds 3 rsa2048` verify/s;
#  3. --batch over N ES256 tokens, vs `openssl speed -seconds 3 ecdsap256` verify/s.
# Usage: benches/verify.sh [N]   (default 100000 tokens: 1000 distinct ones, repeated)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
source benches/compare.sh
command -v jwt >/dev/null || { echo "jwt-cli is needed (cargo install jwt-cli)" >&2; exit 2; }
J=$(release_jwkit)
K=$PWD/tests/vectors/keys
T=$COMPARE_TMP

make_tokens() { # key alg out
  local key=$1 alg=$2 out=$3
  : > "$T/distinct"
  for i in $(seq 1000); do
    "$J" generate-jwt --key-file "$key" --alg "$alg" --sub "user-$i" --iss bench --exp 2h >> "$T/distinct"
  done
  python3 - "$T/distinct" "$out" "$N" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
n = int(sys.argv[3])
with open(sys.argv[2], "w") as f:
    for i in range(n):
        f.write(lines[i % len(lines)] + "\n")
PY
}

batch_rate() { # label tokens keyfile threads -> tokens/s (median of 9 runs)
  hyperfine -N --warmup 1 --runs 9 --export-json "$T/b.json" \
    "$J verify-jwt --batch --threads $4 --key-file $3 $2" >/dev/null 2>&1 || true
  python3 - "$T/b.json" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"{int(sys.argv[2]) / r['median']:.0f}")
PY
}

echo "## Whole process, one token, local key"
echo
echo "| alg | jwkit median | jwt-cli median | jwkit / jwt-cli | runs |"
echo "|---|---|---|---|---|"
RS=$("$J" generate-jwt --key-file "$K/rfc7515-A.2.private.pem" --sub alice --exp 1h)
ES=$("$J" generate-jwt --key-file "$K/rfc7515-A.3.private.pem" --sub alice --exp 1h)
compare RS256 100 "$J verify-jwt --key-file $K/rfc7515-A.2.public.pem $RS" "jwt decode -A RS256 -S @$K/rfc7515-A.2.public.pem $RS"
compare ES256 100 "$J verify-jwt --key-file $K/rfc7515-A.3.public.pem $ES" "jwt decode -A ES256 -S @$K/rfc7515-A.3.public.pem $ES"
# The first run with an RSA key also tests its modulus for primality (aws-lc Miller-Rabin), once
# per key and user; later runs find the modulus in the memo ($XDG_CACHE_HOME/jwkit/rsa-composite).
# This row empties the memo before every run, so each pays the test (the rows above are warm).
COLD=$T/cold-cache
mkdir -p "$COLD"
XDG_CACHE_HOME=$COLD COMPARE_PREPARE="rm -rf $COLD/jwkit" compare "RS256, key new to the user" 100 \
  "$J verify-jwt --key-file $K/rfc7515-A.2.public.pem $RS" "jwt decode -A RS256 -S @$K/rfc7515-A.2.public.pem $RS"

echo
echo "## --batch, $N tokens"
echo
make_tokens "$K/rfc7515-A.2.private.pem" RS256 "$T/rs.txt"
make_tokens "$K/rfc7515-A.3.private.pem" ES256 "$T/es.txt"
# The tokens must all be valid, or the rate means nothing.
"$J" verify-jwt --batch --key-file "$K/rfc7515-A.2.public.pem" "$T/rs.txt" >/dev/null 2>&1
"$J" verify-jwt --batch --key-file "$K/rfc7515-A.3.public.pem" "$T/es.txt" >/dev/null 2>&1
OS_RSA=$(openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $NF}')
OS_EC=$(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/ecdsa \(nistp256\)/ {print $NF}')
RS1=$(batch_rate RS256 "$T/rs.txt" "$K/rfc7515-A.2.public.pem" 1)
RS2=$(batch_rate RS256 "$T/rs.txt" "$K/rfc7515-A.2.public.pem" 2)
ES1=$(batch_rate ES256 "$T/es.txt" "$K/rfc7515-A.3.public.pem" 1)
ES2=$(batch_rate ES256 "$T/es.txt" "$K/rfc7515-A.3.public.pem" 2)
python3 - "$OS_RSA" "$OS_EC" "$RS1" "$RS2" "$ES1" "$ES2" <<'PY'
import sys
os_rsa, os_ec, rs1, rs2, es1, es2 = map(float, sys.argv[1:])
print("| workload | jwkit tokens/s | openssl verify/s (1 core) | ratio |")
print("|---|---|---|---|")
print(f"| RS256, 1 thread | {rs1:.0f} | {os_rsa:.0f} | {rs1/os_rsa:.2f} |")
print(f"| RS256, 2 threads | {rs2:.0f} | {os_rsa:.0f} | {rs2/os_rsa:.2f} |")
print(f"| ES256, 1 thread | {es1:.0f} | {os_ec:.0f} | {es1/os_ec:.2f} |")
print(f"| ES256, 2 threads | {es2:.0f} | {os_ec:.0f} | {es2/os_ec:.2f} |")
PY
echo
echo "jwt-cli: $(jwt --version); $(openssl version)"
