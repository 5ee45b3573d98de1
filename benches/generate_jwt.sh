#!/usr/bin/env bash
# Whole-process token signing: jwkit generate-jwt vs jwt-cli (`cargo install jwt-cli`, binary
# `jwt`) encoding the same claims with the same keys, side by side in one run.
# Usage: benches/generate_jwt.sh [RUNS]  (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-50}
source benches/compare.sh
command -v jwt >/dev/null || { echo "jwt-cli is needed (cargo install jwt-cli)" >&2; exit 2; }
J=$(release_jwkit)
K=$PWD/tests/vectors/keys
cp "$K/rfc7515-A.1.hmac.bin" "$COMPARE_TMP/hs.bin"
CLAIMS_J="--iss me --sub alice --exp 1h --kid k1"
CLAIMS_T="--iss me --sub alice --exp=+1h -k k1"
echo "| alg (key) | jwkit median | jwt-cli median | jwkit / jwt-cli | runs |"
echo "|---|---|---|---|---|"
compare "RS256 (RSA-2048 PEM)" "$RUNS" "$J generate-jwt --key-file $K/rfc7515-A.2.private.pem $CLAIMS_J" "jwt encode -A RS256 -S @$K/rfc7515-A.2.private.pem $CLAIMS_T"
compare "ES256 (P-256 PEM)" "$RUNS" "$J generate-jwt --key-file $K/rfc7515-A.3.private.pem $CLAIMS_J" "jwt encode -A ES256 -S @$K/rfc7515-A.3.private.pem $CLAIMS_T"
compare "EdDSA (Ed25519 PEM)" "$RUNS" "$J generate-jwt --key-file $K/rfc8037-A.1.private.pem $CLAIMS_J" "jwt encode -A EDDSA -S @$K/rfc8037-A.1.private.pem $CLAIMS_T"
compare "HS256 (64-byte secret)" "$RUNS" "$J generate-jwt --secret-file $COMPARE_TMP/hs.bin $CLAIMS_J" "jwt encode -A HS256 -S @$COMPARE_TMP/hs.bin $CLAIMS_T"
echo
echo "jwt-cli: $(jwt --version)"
