#!/usr/bin/env bash
# verify-jwt --batch over nested JWTs (RS256 inside (an ID token), encrypted outside), side by side with
# openssl speed in the same run:
#   RSA-OAEP-256 / A256GCM against `openssl speed rsa2048` private operations (sign/s) per
#     core (target: jwkit per core >= 0.8x), each token costing one RSA private operation;
#   ECDH-ES+A256KW on P-256 / A256GCM against `openssl speed ecdhp256` op/s, recorded.
# Usage: benches/jwe.sh [N]   (default 10000 tokens: 1000 distinct ones, repeated)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
source benches/compare.sh
J=$(release_jwkit)
K=$PWD/tests/vectors/keys
T=$COMPARE_TMP
CORES=$(nproc)
"$J" generate-key --type rsa --format jwk --out "$T/rsa.jwk" 2>/dev/null
"$J" generate-key --type ec --format jwk --out "$T/ec.jwk" 2>/dev/null

make_tokens() { # enc-key jwe-alg out
  : > "$T/distinct"
  for i in $(seq 1000); do
    "$J" generate-jwt --key-file "$K/rfc7515-A.2.private.pem" --sub "user-$i" --iss bench --exp 2h \
      --encrypt-key-file "$1" --jwe-alg "$2" --jwe-enc A256GCM >> "$T/distinct"
  done
  python3 - "$T/distinct" "$3" "$N" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
n = int(sys.argv[3])
with open(sys.argv[2], "w") as f:
    for i in range(n):
        f.write(lines[i % len(lines)] + "\n")
PY
}

batch_rate() { # tokens enc-key threads -> tokens/s (median of 5 runs)
  hyperfine -N --warmup 1 --runs 5 --export-json "$T/b.json" \
    "$J verify-jwt --batch --threads $3 --key-file $K/rfc7515-A.2.public.pem --decrypt-key-file $2 $1" >/dev/null 2>&1
  python3 - "$T/b.json" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"{int(sys.argv[2]) / r['median']:.0f}")
PY
}

make_tokens "$T/rsa.jwk" RSA-OAEP-256 "$T/rsa.txt"
make_tokens "$T/ec.jwk" ECDH-ES+A256KW "$T/ec.txt"
# Every token must be valid, or the rate means nothing.
for k in rsa ec; do
  "$J" verify-jwt --batch --key-file "$K/rfc7515-A.2.public.pem" --decrypt-key-file "$T/$k.jwk" "$T/$k.txt" \
    | awk -F'\t' '$2 != "valid" {bad++} END {if (bad) {print bad " invalid tokens" > "/dev/stderr"; exit 1}}'
done
OS_RSA=$(openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $(NF-1)}')
OS_EC=$(openssl speed -seconds 3 ecdhp256 2>/dev/null | awk '/ecdh \(nistp256\)/ {print $NF}')
R1=$(batch_rate "$T/rsa.txt" "$T/rsa.jwk" 1)
RN=$(batch_rate "$T/rsa.txt" "$T/rsa.jwk" "$CORES")
E1=$(batch_rate "$T/ec.txt" "$T/ec.jwk" 1)
EN=$(batch_rate "$T/ec.txt" "$T/ec.jwk" "$CORES")
python3 - "$OS_RSA" "$OS_EC" "$R1" "$RN" "$E1" "$EN" "$CORES" <<'PY'
import sys
os_rsa, os_ec, r1, rn, e1, en, cores = map(float, sys.argv[1:])
c = int(cores)
print("| workload | jwkit tokens/s | per core | openssl (1 core) | per core / openssl |")
print("|---|---|---|---|---|")
print(f"| RSA-OAEP-256/A256GCM, 1 thread | {r1:.0f} | {r1:.0f} | {os_rsa:.0f} rsa2048 sign/s | {r1/os_rsa:.2f} |")
print(f"| RSA-OAEP-256/A256GCM, {c} threads | {rn:.0f} | {rn/c:.0f} | {os_rsa:.0f} rsa2048 sign/s | {rn/c/os_rsa:.2f} (target 0.8) |")
print(f"| ECDH-ES+A256KW P-256/A256GCM, 1 thread | {e1:.0f} | {e1:.0f} | {os_ec:.0f} ecdhp256 op/s | {e1/os_ec:.2f} |")
print(f"| ECDH-ES+A256KW P-256/A256GCM, {c} threads | {en:.0f} | {en/c:.0f} | {os_ec:.0f} ecdhp256 op/s | {en/c/os_ec:.2f} |")
PY
echo
echo "$N tokens (1000 distinct), RS256 inside (an ID token); $(openssl version)"
