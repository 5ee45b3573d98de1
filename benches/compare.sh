# Shared by the whole-process benchmark scripts: `compare NAME RUNS OURS THEIRS` times both
# commands with hyperfine (no shell, 3 warm-up runs) in one run and prints a Markdown row with
# both medians and their ratio. Source it; it needs hyperfine and python3.
command -v hyperfine >/dev/null || { echo "hyperfine is needed (apt-get install hyperfine)" >&2; exit 2; }
COMPARE_TMP=$(mktemp -d)
trap 'rm -rf "$COMPARE_TMP"' EXIT

# Builds the release binary and prints its path (cargo names the host tuple in it, see
# .cargo/config.toml).
release_jwkit() {
  cargo build --release --quiet --message-format=json | python3 -c '
import json, sys
exe = [m["executable"] for m in map(json.loads, sys.stdin)
       if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "jwkit" and m.get("executable")]
print(exe[-1]) if exe else sys.exit("release_jwkit: cargo built no jwkit binary")'
}

compare() {
  local name=$1 runs=$2 ours=$3 theirs=$4
  local prepare=()
  # COMPARE_PREPARE, when set, runs before every timed run (for example emptying a cache).
  [ -n "${COMPARE_PREPARE:-}" ] && prepare=(--prepare "$COMPARE_PREPARE")
  hyperfine -N --warmup 3 --runs "$runs" "${prepare[@]}" --export-json "$COMPARE_TMP/r.json" "$ours" "$theirs" >/dev/null 2>&1
  python3 - "$COMPARE_TMP/r.json" "$name" "$runs" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
a, b = r[0]["median"] * 1000, r[1]["median"] * 1000
print(f"| {sys.argv[2]} | {a:.2f} ms | {b:.2f} ms | {a / b:.2f} | {sys.argv[3]} |")
PY
}
