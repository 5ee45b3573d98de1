#!/usr/bin/env bash
# Whole-process key generation: jwkit generate-key vs openssl genpkey, side by side in one run.
# Medians over RUNS runs each (hyperfine, no shell). Prints a Markdown table.
# Usage: benches/keygen.sh [RUNS]   (default 30; RSA generation time varies a lot run to run)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
command -v hyperfine >/dev/null || { echo "hyperfine is needed (apt-get install hyperfine)" >&2; exit 2; }
cargo build --release --quiet
JWKIT=$PWD/target/release/jwkit
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

cases=(
  "RSA-2048|$JWKIT generate-key --type rsa --bits 2048|openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
  "RSA-3072|$JWKIT generate-key --type rsa --bits 3072|openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072"
  "EC P-256|$JWKIT generate-key --type ec --curve P-256|openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
  "Ed25519|$JWKIT generate-key --type ed25519|openssl genpkey -algorithm ED25519"
)
echo "| key | jwkit median | openssl median | jwkit / openssl | runs |"
echo "|---|---|---|---|---|"
for c in "${cases[@]}"; do
  IFS='|' read -r name ours theirs <<<"$c"
  hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$OUT/r.json" "$ours" "$theirs" >/dev/null 2>&1
  python3 - "$OUT/r.json" "$name" "$RUNS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
a, b = r[0]["median"] * 1000, r[1]["median"] * 1000
print(f"| {sys.argv[2]} | {a:.2f} ms | {b:.2f} ms | {a / b:.2f} | {sys.argv[3]} |")
PY
done
echo
echo "openssl: $(openssl version)"
