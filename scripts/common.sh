# Sourced by the benchmark scripts in this directory: where things are, and the two
# programs they run (our release binary and ../shared/bench's load generator).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="${PREFECT_SHARED_DIR:-$ROOT/../shared}"
[ -d "$SHARED/bench" ] || SHARED=/work/shared
PG_URL="${PREFECT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
TARGET="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$TARGET/release/prefect-server"

build_server() {
  cargo build --release -p prefect-server
}

# The load generator, built where ../shared/bench/bench.sh builds it (its own folder, or a
# cache directory when that folder is read-only), whatever CARGO_TARGET_DIR says.
build_loadgen() {
  if [ -z "${LOADGEN:-}" ]; then
    local dir
    if [ -w "$SHARED/bench/loadgen" ]; then dir="$SHARED/bench/loadgen/target"; else dir="${LOADGEN_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-bench-loadgen}"; fi
    LOADGEN="$dir/release/loadgen"
    [ -x "$LOADGEN" ] || CARGO_TARGET_DIR="$dir" cargo build --release --manifest-path "$SHARED/bench/loadgen/Cargo.toml"
  fi
}
