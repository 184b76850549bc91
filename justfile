# prefect-rs tasks. `just --list` shows them; CI runs `just ci` (= scripts/test.sh).

pg_url := env_var_or_default("PREFECT_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")

# Build everything (debug).
build:
    cargo build --workspace

# Serve on 127.0.0.1:4200 with SQLite under ~/.prefect (release build).
run:
    cargo run --release -p prefect-server -- start

# Unit and HTTP integration tests on SQLite.
test:
    cargo test --workspace

# HTTP integration tests on PostgreSQL (a fresh database per test).
test-pg:
    PREFECT_TEST_DATABASE_URL={{pg_url}} cargo test --workspace --test it

# The Python end-to-end test (needs the prefect 3.9.1 venv; see scripts/test.sh).
e2e:
    cargo test -p prefect-server --test e2e -- --ignored

# The conformance suite against a running server, e.g. `just conformance http://127.0.0.1:4200/api -m tier1_runs`.
conformance url *args:
    ../shared/conformance/run.sh {{url}} {{args}}

# Everything CI runs.
ci:
    ./scripts/test.sh

# Load benchmarks against our release binary on SQLite and PostgreSQL (see docs/performance.md).
bench *args:
    ./scripts/bench.sh {{args}}

# 30-minute mixed soak against our release binary, sampling its memory (SOAK_MINUTES, SOAK_DB_URL).
soak:
    ./scripts/soak.sh

lint:
    cargo clippy --workspace --tests -- -D warnings
    cargo fmt --all --check

fmt:
    cargo fmt --all

# Regenerate docs/openapi.json from the routes.
openapi:
    cargo run -q -p prefect-server -- openapi > docs/openapi.json

# Apply pending migrations to the configured database.
migrate:
    cargo run -q -p prefect-server -- database upgrade
