#!/usr/bin/env bash
# read-filter at 1,000,000 flow runs against our release binary, on SQLite and PostgreSQL.
#
#   scripts/bench_1m.sh                          # both backends, 1,000,000 runs
#   BENCH_BACKENDS=sqlite BENCH_ROWS=200000 scripts/bench_1m.sh
#
# Seeding a million runs through the API would take most of an hour, so the first 1,000
# are created through the API (loadgen seed-flow-runs) and the rest are copied from them
# in SQL (scripts/seed_flow_runs.py). Then loadgen's read-filter runs against a table of
# that size: UI-style pages (state filter, newest first, 50 rows) alternating with counts.
# Results land in target/bench-1m/<timestamp>/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
ROWS="${BENCH_ROWS:-1000000}"
DURATION="${BENCH_DURATION:-20}"

build_server
build_loadgen
OUT="$TARGET/bench-1m/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

for backend in $BACKENDS; do
  home="$(mktemp -d)"
  env=(PREFECT_HOME="$home" PREFECT_SERVER_LOGGING_LEVEL=WARNING)
  db=""
  if [ "$backend" = postgres ]; then
    db="prefect_bench_1m_$$"
    psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
    env+=(PREFECT_SERVER_DATABASE_CONNECTION_URL="${PG_URL%/*}/$db")
  fi
  port=4481
  env "${env[@]}" "$BIN" start --host 127.0.0.1 --port "$port" > "$OUT/server-$backend.log" 2>&1 &
  server=$!
  url="http://127.0.0.1:$port/api"
  until curl -sf "$url/health" > /dev/null; do sleep 0.1; done
  echo "==> $backend: seeding"
  "$LOADGEN" --url "$url" --scenario seed-flow-runs --rows 1000 2>> "$OUT/loadgen.log" | tail -n 1 > /dev/null
  if [ "$backend" = postgres ]; then
    python3 scripts/seed_flow_runs.py postgres "${PG_URL%/*}/$db" "$ROWS"
  else
    python3 scripts/seed_flow_runs.py sqlite "$home/prefect.db" "$ROWS"
  fi
  echo "==> $backend: read-filter at $ROWS+ runs"
  "$LOADGEN" --url "$url" --scenario read-filter --rows "$ROWS" --duration "$DURATION" --warmup 3 --concurrency 16 \
    2>> "$OUT/loadgen.log" | tail -n 1 > "$OUT/read-filter-$backend.json"
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ms"]
print("%.0f req/s, p50 %.1f ms, p99 %.1f ms, errors %d" % (r["throughput_per_s"], l["p50"], l["p99"], r["errors"]))
for name, v in r["request_latency_ms"].items():
    print("  %s: p50 %.1f ms, p99 %.1f ms" % (name, v["p50"], v["p99"]))
' "$OUT/read-filter-$backend.json"
  echo "peak RSS: $(awk '/VmHWM/ {print $2}' /proc/$server/status) KiB"
  kill "$server"; wait "$server" 2>/dev/null || true
  rm -rf "$home"
  [ -z "$db" ] || psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
done
echo "results: $OUT"
