#!/usr/bin/env bash
# Runs every test of the project, as CI does:
#   1. unit and HTTP integration tests on SQLite, then again on PostgreSQL;
#   2. the embedded-storage example and the Python end-to-end test (prefect 3.9.1 SDK);
#   3. the conformance suite (../shared/conformance) against the release binary, on SQLite and PostgreSQL.
# Needs: a Rust toolchain, Python 3.11 with pip, PostgreSQL reachable at PREFECT_TEST_DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/postgres, trust auth). Sets up the conformance venv if missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SHARED="${PREFECT_SHARED_DIR:-$ROOT/../shared}"
[ -d "$SHARED/conformance" ] || SHARED=/work/shared
PG_URL="${PREFECT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
CONFORMANCE_SELECTION="${CONFORMANCE_SELECTION:-tier1_runs or api_contract or tier2_config or tier2_deploy or tier3_events}"
# Every selected conformance test must pass; CONFORMANCE_FILTER (a pytest -k expression) narrows a local run.
CONFORMANCE_FILTER="${CONFORMANCE_FILTER-}"
TARGET="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

step() { printf '\n==> %s\n' "$*"; }

step "conformance venv (prefect 3.9.1)"
if [ -w "$SHARED/conformance" ]; then VENV="$SHARED/conformance/.venv"; else VENV="${XDG_CACHE_HOME:-$HOME/.cache}/prefect-conformance-venv"; fi
VENV="${CONFORMANCE_VENV:-$VENV}"
[ -x "$VENV/bin/python" ] || "$SHARED/conformance/setup.sh" "$VENV"
export CONFORMANCE_VENV="$VENV" PREFECT_E2E_PYTHON="$VENV/bin/python"

step "PostgreSQL at $PG_URL"
python3 - "$PG_URL" <<'PY'
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=5).close()
PY

step "unit and HTTP tests on SQLite"
cargo test --workspace

step "HTTP tests on PostgreSQL"
PREFECT_TEST_DATABASE_URL="$PG_URL" cargo test --workspace --test it

step "end-to-end: a Python flow through the prefect SDK (SQLite and PostgreSQL)"
cargo test -p prefect-server --test e2e -- --ignored
PREFECT_TEST_DATABASE_URL="$PG_URL" cargo test -p prefect-server --test e2e -- --ignored

step "release build"
cargo build --release -p prefect-server
BIN="$TARGET/release/prefect-server"

run_conformance() {
  local label="$1" url="$2" port="$3"
  local home; home="$(mktemp -d)"
  step "conformance ($label): -m \"$CONFORMANCE_SELECTION\" ${CONFORMANCE_FILTER:+-k \"$CONFORMANCE_FILTER\"}"
  PREFECT_HOME="$home" PREFECT_SERVER_DATABASE_CONNECTION_URL="$url" "$BIN" start --host 127.0.0.1 --port "$port" >"$home/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.1; done
  local rc=0
  "$SHARED/conformance/run.sh" "http://127.0.0.1:$port/api" -m "$CONFORMANCE_SELECTION" ${CONFORMANCE_FILTER:+-k "$CONFORMANCE_FILTER"} -q || rc=$?
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then echo "server log:"; tail -50 "$home/server.log"; fi
  rm -rf "$home"
  return "$rc"
}

run_conformance "SQLite" "" 4291
DB="prefect_ci_$(date +%s)_$$"
PG_BASE="${PG_URL%/*}"
psql "$PG_URL" -qc "CREATE DATABASE $DB"
trap 'psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true' EXIT
run_conformance "PostgreSQL" "${PG_BASE/postgres:/postgresql+asyncpg:}/$DB" 4292

step "all tests passed"
