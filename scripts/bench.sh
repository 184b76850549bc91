#!/usr/bin/env bash
# Load benchmarks with ../shared/bench against our release binary, on SQLite and
# PostgreSQL, optionally side by side with the Python Prefect server in the same run.
#
#   scripts/bench.sh                       # ours on SQLite and PostgreSQL
#   scripts/bench.sh --python              # and the Python server (conformance venv), same settings
#   BENCH_BACKENDS=sqlite scripts/bench.sh --scenarios "flow-run-lifecycle" --repeats 1
#
# The Python server seeds read-filter rows at tens of runs per second, so its runs use
# PYTHON_ROWS (default "1000") instead of --rows; ours use --rows as given.
#
# Other arguments go to bench.sh (defaults are the BASELINE.md settings). Results land
# in target/bench/<label>/ and a side-by-side table is printed at the end (summarize.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
VENV="${CONFORMANCE_VENV:-$SHARED/conformance/.venv}"
PYTHON=0
ARGS=()
for arg in "$@"; do
  if [ "$arg" = "--python" ]; then PYTHON=1; else ARGS+=("$arg"); fi
done
SETTINGS=(--duration 10 --warmup 2 --concurrency 16 --repeats 3 --rows "1000 10000")
PYTHON_ROWS="${PYTHON_ROWS:-1000}"

build_server
OUT_ROOT="$TARGET/bench/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_ROOT"
RESULTS=()

fresh_pg_db() {
  local db="prefect_bench_$1_$$"
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
  echo "${PG_URL%/*}/$db"
}

# run LABEL PORT DB_URL START_COMMAND...
run() {
  local label="$1" port="$2" db_url="$3"; shift 3
  local home; home="$(mktemp -d)"
  echo "==> $label"
  local env=(PREFECT_HOME="$home" PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_SERVER_LOGGING_LEVEL=WARNING)
  [ -z "$db_url" ] || env+=(PREFECT_SERVER_DATABASE_CONNECTION_URL="$db_url")
  local extra=()
  [[ "$label" != python* ]] || extra=(--rows "$PYTHON_ROWS")
  env "${env[@]}" "$SHARED/bench/bench.sh" --label "$label" --out "$OUT_ROOT/$label" --url "http://127.0.0.1:$port/api" \
    --start-cmd "$* --host 127.0.0.1 --port $port" "${SETTINGS[@]}" "${ARGS[@]}" ${extra[@]+"${extra[@]}"}
  RESULTS+=("$OUT_ROOT/$label")
  rm -rf "$home"
}

for backend in $BACKENDS; do
  case "$backend" in
    sqlite)
      run rust-sqlite 4461 "" "$BIN" start
      if [ "$PYTHON" = 1 ]; then run python-sqlite 4462 "" "$VENV/bin/prefect" server start; fi
      ;;
    postgres)
      run rust-postgres 4463 "$(fresh_pg_db rust)" "$BIN" start
      if [ "$PYTHON" = 1 ]; then
        url="$(fresh_pg_db python)"
        run python-postgres 4464 "${url/postgres:/postgresql+asyncpg:}" "$VENV/bin/prefect" server start
      fi
      ;;
    *) echo "unknown backend $backend" >&2; exit 2;;
  esac
done

python3 "$SHARED/bench/summarize.py" "${RESULTS[@]}" | tee "$OUT_ROOT/summary.md"
echo "results: $OUT_ROOT"
