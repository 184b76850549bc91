"""A flow run through the real prefect SDK against the server under test.

Prints one JSON line with the ids the Rust test then looks up.
"""
import json
import sys

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

attempts = {"n": 0}


@task(retries=2, retry_delay_seconds=0)
def flaky(x: int) -> int:
    attempts["n"] += 1
    if attempts["n"] < 2:
        raise RuntimeError("first attempt fails")
    return x * 2


@task(cache_key_fn=lambda ctx, params: f"e2e-{params['tag']}", persist_result=True)
def cached(tag: str) -> str:
    return f"cached-{tag}"


@task(tags=["e2e"])
def add(a: int, b: int) -> int:
    return a + b


@flow(name="e2e-child")
def child(x: int) -> int:
    return add(x, 1)


@flow(name="e2e-parent", log_prints=True, persist_result=True)
def parent(tag: str) -> int:
    get_run_logger().info(f"starting {tag}")
    print(f"printed {tag}")
    doubled = flaky(2)
    cached(tag)
    cached(tag)
    futures = [add.submit(i, i) for i in range(3)]
    total = sum(f.result() for f in futures)
    create_markdown_artifact(key=f"e2e-{tag}", markdown=f"# {tag}")
    return child(doubled) + total


if __name__ == "__main__":
    tag = sys.argv[1]
    state = parent(tag, return_state=True)
    print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id), "result": state.result(), "completed": state.is_completed()}))
