#!/usr/bin/env python3
"""Bulk-seed flow runs straight into a database, for read-filter at 1,000,000 runs.

Seeding through the API runs at the speed of orchestration (a few hundred to a few
thousand runs per second), which makes a million-run table take most of an hour. This
copies an existing run (its flow, parameters, policy, tags) COUNT times in one SQL
statement per table, each copy with its own id, a current state row, a state type
drawn from a realistic mix (60 % Completed) and an expected start time one second
apart going back from now. The server must have created at least one flow run first
(`loadgen --scenario seed-flow-runs --rows 1000` does), and may keep running: the
rows are inserted in one transaction.

    scripts/seed_flow_runs.py sqlite  "$PREFECT_HOME/prefect.db"              1000000
    scripts/seed_flow_runs.py postgres postgres://postgres@127.0.0.1:5432/db  1000000
"""
import subprocess
import sqlite3
import sys
import time

# Ten slots: six Completed, then one each of Failed, Running, Scheduled, Cancelled.
STATE_TYPE = "CASE i % 10 WHEN 6 THEN 'FAILED' WHEN 7 THEN 'RUNNING' WHEN 8 THEN 'SCHEDULED' WHEN 9 THEN 'CANCELLED' ELSE 'COMPLETED' END"
STATE_NAME = "CASE i % 10 WHEN 6 THEN 'Failed' WHEN 7 THEN 'Running' WHEN 8 THEN 'Scheduled' WHEN 9 THEN 'Cancelled' ELSE 'Completed' END"
DETAILS = (
    '"cache_expiration":null,"cache_key":null,"child_flow_run_id":null,"deferred":false,'
    '"deployment_concurrency_lease_id":null,"pause_key":null,"pause_reschedule":false,"pause_timeout":null,'
    '"refresh_cache":null,"retriable":null,"run_input_keyset":null,"scheduled_time":null,"task_parameters_id":null,'
    '"task_run_id":null,"traceparent":null,"transition_id":null,"untrackable_result":false'
)
RUN_COLUMNS = (
    "id, created, updated, flow_id, parameters, context, empirical_policy, tags, labels, auto_scheduled, "
    "state_id, name, state_type, state_name, state_timestamp, run_count, expected_start_time, "
    "next_scheduled_start_time, total_run_time"
)


def seed_sqlite(path: str, count: int) -> None:
    # Timestamps are stored as fixed-width RFC 3339 text with microseconds.
    stamp = "strftime('%Y-%m-%dT%H:%M:%S', 'now', '-' || i || ' seconds') || '.000000+00:00'"
    uuid_text = (
        "lower(substr(hex({0}),1,8) || '-' || substr(hex({0}),9,4) || '-' || substr(hex({0}),13,4) || '-' "
        "|| substr(hex({0}),17,4) || '-' || substr(hex({0}),21,12))"
    )
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?),
                t AS (SELECT * FROM flow_run LIMIT 1)
            INSERT INTO flow_run ({RUN_COLUMNS})
            SELECT randomblob(16), {stamp}, {stamp}, t.flow_id, t.parameters, t.context, t.empirical_policy, t.tags,
                   t.labels, 0, randomblob(16), 'bulk-seed-' || i, {STATE_TYPE}, {STATE_NAME}, {stamp}, 0, {stamp},
                   CASE WHEN i % 10 = 8 THEN {stamp} END, 0.0
            FROM n, t""",
        (count,),
    )
    db.execute(
        f"""INSERT INTO flow_run_state (id, created, updated, flow_run_id, type, timestamp, name, state_details)
            SELECT state_id, created, updated, id, state_type, state_timestamp, state_name,
                   '{{"flow_run_id":"' || {uuid_text.format("id")} || '",{DETAILS}}}'
            FROM flow_run WHERE name LIKE 'bulk-seed-%' AND state_id NOT IN (SELECT id FROM flow_run_state)"""
    )
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def seed_postgres(url: str, count: int) -> None:
    stamp = "(now() - i * interval '1 second')"
    sql = f"""
        BEGIN;
        INSERT INTO flow_run ({RUN_COLUMNS})
        SELECT gen_random_uuid(), {stamp}, {stamp}, t.flow_id, t.parameters, t.context, t.empirical_policy, t.tags,
               t.labels, false, gen_random_uuid(), 'bulk-seed-' || i, {STATE_TYPE}, {STATE_NAME}, {stamp}, 0, {stamp},
               CASE WHEN i % 10 = 8 THEN {stamp} END, 0.0
        FROM generate_series(1, {count}) AS i, (SELECT * FROM flow_run LIMIT 1) AS t;
        INSERT INTO flow_run_state (id, created, updated, flow_run_id, type, timestamp, name, state_details)
        SELECT r.state_id, r.created, r.updated, r.id, r.state_type, r.state_timestamp, r.state_name,
               ('{{"flow_run_id":"' || r.id::text || '",{DETAILS}}}')::jsonb
        FROM flow_run r LEFT JOIN flow_run_state s ON s.id = r.state_id
        WHERE r.name LIKE 'bulk-seed-%' AND s.id IS NULL;
        COMMIT;
    """
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)
    # As autovacuum would after such an insert: statistics, and the visibility map that
    # lets counts use index-only scans. VACUUM must run outside a multi-statement string.
    for table in ("flow_run", "flow_run_state"):
        subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", f"VACUUM (ANALYZE) {table}"], check=True)


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in ("sqlite", "postgres"):
        sys.exit(__doc__)
    backend, target, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    started = time.monotonic()
    (seed_sqlite if backend == "sqlite" else seed_postgres)(target, count)
    print(f"seeded {count} flow runs in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
