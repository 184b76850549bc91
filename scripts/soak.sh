#!/usr/bin/env bash
# Mixed soak: our release binary under every load scenario at once for a long time,
# sampling the server's resident memory, to show that memory stays flat.
#
#   scripts/soak.sh                      # 30 minutes on SQLite
#   SOAK_MINUTES=5 scripts/soak.sh
#   SOAK_DB_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/soak scripts/soak.sh
#
# Each minute, five load generators run side by side for 55 s (flow-run lifecycles,
# task-run lifecycles, log batches, event batches, worker polls and UI pages; the
# database grows all the while). RSS is sampled every 5 s into rss.csv. At the end it
# prints the median RSS of minutes 3-7 and of the last five minutes, their ratio, and
# every loadgen error. Results land in target/soak/<timestamp>/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MINUTES="${SOAK_MINUTES:-30}"
PORT="${SOAK_PORT:-4471}"

build_server
build_loadgen
OUT="$TARGET/soak/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
HOME_DIR="$(mktemp -d)"

env PREFECT_HOME="$HOME_DIR" PREFECT_SERVER_LOGGING_LEVEL=WARNING ${SOAK_DB_URL:+PREFECT_SERVER_DATABASE_CONNECTION_URL="$SOAK_DB_URL"} \
  "$BIN" start --host 127.0.0.1 --port "$PORT" > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$HOME_DIR"' EXIT
URL="http://127.0.0.1:$PORT/api"
until curl -sf "$URL/health" > /dev/null; do sleep 0.1; done

(
  echo "seconds,rss_kib,anon_kib,file_kib"
  start=$(date +%s)
  while kill -0 "$SERVER" 2>/dev/null; do
    # RssAnon is the heap (SQLite page caches live there too); RssFile is mapped files.
    echo "$(( $(date +%s) - start )),$(awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print r "," a "," f}' /proc/$SERVER/status)"
    sleep 5
  done
) > "$OUT/rss.csv" &
SAMPLER=$!

lg() { "$LOADGEN" --url "$URL" --duration 55 --warmup 0 --retries 3 "$@" 2>> "$OUT/loadgen.log" | tail -n 1 >> "$OUT/results.jsonl"; }
for minute in $(seq 1 "$MINUTES"); do
  lg --scenario flow-run-lifecycle --concurrency 4 &
  lg --scenario task-run-lifecycle --concurrency 4 &
  lg --scenario logs-ingest --concurrency 2 &
  lg --scenario events-ingest --concurrency 2 --persist-wait 120 &
  if [ $((minute % 2)) = 0 ]; then lg --scenario read-filter --concurrency 2 --rows 1000 & else lg --scenario work-pool-poll --concurrency 2 --scheduled 100 & fi
  wait $(jobs -p | grep -v "^$SAMPLER$" | grep -v "^$SERVER$") 2>/dev/null || true
  echo "minute $minute: RSS $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status) KiB"
done
kill "$SAMPLER" 2>/dev/null || true

python3 - "$OUT" <<'EOF'
import csv, json, statistics, sys
out = sys.argv[1]
samples = [r for r in csv.DictReader(open(f"{out}/rss.csv")) if r["rss_kib"]]
rows = [(int(r["seconds"]), int(r["rss_kib"])) for r in samples]
anon = [(int(r["seconds"]), int(r["anon_kib"])) for r in samples]
end = rows[-1][0]
early = [kib for s, kib in rows if 120 <= s < 420]
late = [kib for s, kib in rows if s >= end - 300]
results = [json.loads(l) for l in open(f"{out}/results.jsonl") if l.strip()]
errors = sum(r.get("errors", 0) for r in results)
summary = {
    "minutes": round(end / 60, 1),
    "rss_mib_median_minutes_3_to_7": round(statistics.median(early) / 1024, 1),
    "rss_mib_median_last_5_minutes": round(statistics.median(late) / 1024, 1),
    "rss_mib_peak": round(max(k for _, k in rows) / 1024, 1),
    "late_over_early": round(statistics.median(late) / statistics.median(early), 3),
    "anon_mib_median_minutes_3_to_7": round(statistics.median([k for s, k in anon if 120 <= s < 420]) / 1024, 1),
    "anon_mib_median_last_5_minutes": round(statistics.median([k for s, k in anon if s >= end - 300]) / 1024, 1),
    "loadgen_runs": len(results),
    "loadgen_errors": errors,
    "units": {sc: sum(r["units"] for r in results if r["scenario"] == sc) for sc in sorted({r["scenario"] for r in results})},
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
EOF
echo "results: $OUT"
