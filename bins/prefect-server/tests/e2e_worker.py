"""A deployment run executed by a real process worker.

python e2e_worker.py TAG: creates a process work pool, deploys `greet` from this
directory to it, asks for a run with `run_deployment`, then runs
`prefect worker start --pool P --type process --run-once` and waits for it.
Prints one JSON line: {"flow_run_id", "pool", "deployment_id", "worker_exit"}.
"""
import json
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment

HERE = Path(__file__).resolve().parent


@flow(name="e2e-worker-greet")
def greet(name: str = "world") -> str:
    message = f"greetings {name}"
    get_run_logger().info(message)
    return message


if __name__ == "__main__":
    tag = sys.argv[1]
    pool = f"e2e-pool-{tag}"
    prefect = [str(Path(sys.executable).parent / "prefect")]
    subprocess.run([*prefect, "work-pool", "create", pool, "--type", "process"], check=True, capture_output=True)
    remote = flow.from_source(source=str(HERE), entrypoint="e2e_worker.py:greet")
    deployment_id = remote.deploy(name=f"e2e-{tag}", work_pool_name=pool, print_next_steps=False, build=False, push=False)
    run = run_deployment(f"e2e-worker-greet/e2e-{tag}", parameters={"name": tag}, timeout=0)
    worker = subprocess.run(
        [*prefect, "worker", "start", "--pool", pool, "--type", "process", "--run-once"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if worker.returncode != 0:
        print(worker.stdout, worker.stderr, file=sys.stderr)
    print(json.dumps({"flow_run_id": str(run.id), "pool": pool, "deployment_id": str(deployment_id), "worker_exit": worker.returncode}))
