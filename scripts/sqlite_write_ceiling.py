#!/usr/bin/env python3
"""What SQLite alone costs per flow run lifecycle with Prefect's schema: the ceiling of
any server on one SQLite writer, before HTTP, JSON or orchestration.

    scripts/sqlite_write_ceiling.py [--runs 20000] [--batch 16] [--bin target/release/prefect-server]

It migrates a fresh database with our binary (`database upgrade`), then replays the rows
a lifecycle writes (insert the run and its Pending state; twice: read the run with its
state, insert a state, update the run), `--batch` lifecycles' statements per write
transaction, WAL and `synchronous = NORMAL` as the server runs. The statements are
prepared once (Python's sqlite3 caches them), so what is measured is SQLite's B-tree
and WAL work plus a few microseconds of Python per statement. Variants:

- `all-columns`: the run's update assigns every orchestration column, as before the
  tenth session;
- `changed-columns`: it assigns only the columns the transition changed (what the server
  does now);
- `no-secondary-indexes`: `changed-columns` with every non-unique index of `flow_run` and
  `flow_run_state` dropped, to show what the indexes Prefect's filters need cost.
"""
import argparse
import datetime
import json
import os
import sqlite3
import subprocess
import tempfile
import time
import uuid

POLICY = json.dumps({"max_retries": 0, "retry_delay_seconds": 0.0, "retries": None, "retry_delay": None,
                     "pause_keys": [], "resuming": False, "retry_type": None})
DETAILS = json.dumps({"flow_run_id": None, "task_run_id": None, "child_flow_run_id": None, "scheduled_time": None,
                      "cache_key": None, "cache_expiration": None, "deferred": False, "untrackable_result": False,
                      "pause_timeout": None, "pause_reschedule": False, "pause_key": None, "run_input_keyset": None,
                      "refresh_cache": None, "retriable": None, "transition_id": str(uuid.uuid4()),
                      "task_parameters_id": None, "traceparent": None, "deployment_concurrency_lease_id": None})

INSERT_RUN = """INSERT INTO flow_run (id, created, updated, flow_id, deployment_id, deployment_version, work_queue_name,
    work_queue_id, flow_version, parameters, idempotency_key, context, empirical_policy, tags, labels, created_by,
    infrastructure_pid, job_variables, infrastructure_document_id, parent_task_run_id, auto_scheduled, name, state_id,
    state_type, state_name, state_timestamp, run_count, start_time, end_time, total_run_time, expected_start_time,
    next_scheduled_start_time)
    VALUES (?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, '{}', NULL, '{}', ?, '[]', '{}', NULL, NULL, '{}', NULL, NULL, 0, ?, ?,
    ?, ?, ?, 0, NULL, NULL, 0, ?, NULL)"""
INSERT_STATE = """INSERT INTO flow_run_state (id, created, updated, flow_run_id, type, timestamp, name, message,
    state_details, data, result_artifact_id) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, NULL)"""
READ = """SELECT flow_run.*, flow_run_state.*, EXISTS (SELECT 1 FROM flow_run_state AS other
    WHERE other.flow_run_id = ? AND other.timestamp = ?) FROM flow_run
    LEFT JOIN flow_run_state ON flow_run.state_id = flow_run_state.id WHERE flow_run.id = ?"""
UPDATE_ALL = """UPDATE flow_run SET updated = ?, empirical_policy = ?, state_id = ?, state_type = ?, state_name = ?,
    state_timestamp = ?, run_count = ?, start_time = ?, end_time = ?, total_run_time = ?, expected_start_time = ?,
    next_scheduled_start_time = ? WHERE id = ?"""
UPDATE_RUNNING = """UPDATE flow_run SET updated = ?, state_id = ?, state_type = ?, state_name = ?, state_timestamp = ?,
    run_count = ?, start_time = ? WHERE id = ?"""
UPDATE_COMPLETED = """UPDATE flow_run SET updated = ?, state_id = ?, state_type = ?, state_name = ?, state_timestamp = ?,
    end_time = ?, total_run_time = ? WHERE id = ?"""


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def migrated(binary, home):
    env = dict(os.environ, PREFECT_HOME=home, PREFECT_SERVER_DATABASE_CONNECTION_URL="")
    subprocess.run([binary, "database", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
    return os.path.join(home, "prefect.db")


def run(path, variant, runs, batch):
    c = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "cache_size = -16000", "foreign_keys = ON"):
        c.execute(f"PRAGMA {pragma}")
    if variant == "no-secondary-indexes":
        for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('flow_run', 'flow_run_state') "
                                 "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'").fetchall():
            c.execute(f'DROP INDEX "{name}"')
    flow = str(uuid.uuid4())
    c.execute("INSERT INTO flow (id, created, updated, name, tags, labels) VALUES (?, ?, ?, 'f', '[]', '{}')", (flow, now(), now()))
    # `batch` runs in flight, as `batch` clients each driving one run: every transaction
    # takes one step of each, and a finished run makes room for a new one.
    inflight = [(str(uuid.uuid4()), 0) for _ in range(batch)]
    finished = 0
    started = time.perf_counter()
    while finished < runs:
        c.execute("BEGIN IMMEDIATE")
        for run_id, phase in inflight:
            t, state_id = now(), str(uuid.uuid4())
            if phase == 0:
                c.execute(INSERT_RUN, (run_id, t, t, flow, POLICY, "run-" + run_id[:8], state_id, "PENDING", "Pending", t, t))
                c.execute(INSERT_STATE, (state_id, t, t, run_id, "PENDING", t, "Pending", DETAILS))
            else:
                row = c.execute(READ, (run_id, t, run_id)).fetchone()
                assert row is not None
                kind, name = ("RUNNING", "Running") if phase == 1 else ("COMPLETED", "Completed")
                c.execute(INSERT_STATE, (state_id, t, t, run_id, kind, t, name, DETAILS))
                if variant == "all-columns":
                    end = t if phase == 2 else None
                    c.execute(UPDATE_ALL, (t, POLICY, state_id, kind, name, t, 1, t, end, 0.5 if end else 0.0, t, None, run_id))
                elif phase == 1:
                    c.execute(UPDATE_RUNNING, (t, state_id, kind, name, t, 1, t, run_id))
                else:
                    c.execute(UPDATE_COMPLETED, (t, state_id, kind, name, t, t, 0.5, run_id))
        c.execute("COMMIT")
        finished += sum(1 for _, phase in inflight if phase == 2)
        inflight = [(run_id, phase + 1) if phase < 2 else (str(uuid.uuid4()), 0) for run_id, phase in inflight]
    elapsed = time.perf_counter() - started
    c.close()
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=16)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    parser.add_argument("--bin", default=os.path.join(target, "release", "prefect-server"))
    parser.add_argument("--variants", default="all-columns changed-columns no-secondary-indexes")
    args = parser.parse_args()
    for variant in args.variants.split():
        with tempfile.TemporaryDirectory() as home:
            elapsed = run(migrated(args.bin, home), variant, args.runs, args.batch)
        print(f"{variant:22} {args.runs / elapsed:7.0f} lifecycles/s  {elapsed / args.runs * 1e6:6.0f} us per lifecycle")


if __name__ == "__main__":
    main()
