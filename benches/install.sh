#!/usr/bin/env bash
# Per-process speed however jwkit is installed: the repository's release build against the
# packaged crate (`cargo package`, the .crate unpacked and installed with `cargo install --locked`
# from another directory into a temporary root, so no repository .cargo/config.toml applies),
# once with the README's install command (AWS_LC_SYS_NO_JITTER_ENTROPY=1) and once without it.
# generate-jwt RS256 per process, hyperfine, same run. Two release builds: about 10 minutes on
# 2 cores. Usage: benches/install.sh [RUNS]  (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-100}
source benches/compare.sh
REPO=$(release_jwkit)
cargo package --locked --no-verify --allow-dirty --quiet
VERSION=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["packages"][0]["version"])')
CRATE=$PWD/target/package/jwkit-$VERSION.crate
mkdir "$COMPARE_TMP/src"
tar -xzf "$CRATE" -C "$COMPARE_TMP/src"
# Each install in its own target directory, as on a user's machine (a shared one could reuse
# the other's aws-lc build).
install_from_crate() { # ROOT [ENV...]
  local root=$1
  shift
  (cd "$COMPARE_TMP" && env "$@" cargo install --locked --path "$COMPARE_TMP/src/jwkit-$VERSION" \
    --root "$root" --target-dir "$root.target" 2>&1 | grep -E '^warning: jwkit' || true) >&2
}
install_from_crate "$COMPARE_TMP/fast" AWS_LC_SYS_NO_JITTER_ENTROPY=1
install_from_crate "$COMPARE_TMP/plain" -u AWS_LC_SYS_NO_JITTER_ENTROPY
K=$PWD/tests/vectors/keys
ARGS="generate-jwt --key-file $K/rfc7515-A.2.private.pem --iss me --sub alice --exp 1h"
echo "| build | its median | repository build median | ratio | runs |"
echo "|---|---|---|---|---|"
compare "packaged crate, README install command" "$RUNS" "$COMPARE_TMP/fast/bin/jwkit $ARGS" "$REPO $ARGS"
compare "packaged crate, no AWS_LC_SYS_NO_JITTER_ENTROPY" "$RUNS" "$COMPARE_TMP/plain/bin/jwkit $ARGS" "$REPO $ARGS"
echo
echo "linking: repository $(file -b "$REPO" | cut -d, -f1-2); packaged $(file -b "$COMPARE_TMP/fast/bin/jwkit" | cut -d, -f1-2)"
