#!/usr/bin/env bash
# Whole-process key generation: jwkit generate-key vs openssl genpkey, side by side in one run.
# Medians over RUNS runs each. Usage: benches/keygen.sh [RUNS]  (default 30; RSA generation
# time varies a lot from run to run, so more runs give a steadier median)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
source benches/compare.sh
J=$(release_jwkit)
echo "| key | jwkit median | openssl median | jwkit / openssl | runs |"
echo "|---|---|---|---|---|"
compare RSA-2048 "$RUNS" "$J generate-key --type rsa --bits 2048" "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
compare RSA-3072 "$RUNS" "$J generate-key --type rsa --bits 3072" "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072"
compare "EC P-256" "$RUNS" "$J generate-key --type ec --curve P-256" "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
compare Ed25519 "$RUNS" "$J generate-key --type ed25519" "openssl genpkey -algorithm ED25519"
echo
echo "openssl: $(openssl version)"
