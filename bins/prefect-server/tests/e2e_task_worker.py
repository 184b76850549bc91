"""Background tasks: `task.delay()` served by a real task worker.

python e2e_task_worker.py TAG: starts a task worker (`prefect.task_worker.serve`) for
`double` in a subprocess, calls `double.delay(21)` here, and waits for the result through
the server. Prints one JSON line: {"task_run_id", "result", "task_key", "seen_in_event_stream"}.
"""
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TASKS = textwrap.dedent(
    """
    from prefect import task

    @task
    def double(x: int) -> int:
        return x * 2
    """
)

if __name__ == "__main__":
    tag = sys.argv[1]
    with tempfile.TemporaryDirectory() as directory:
        module = f"bg_tasks_{tag}"
        Path(directory, f"{module}.py").write_text(TASKS)
        sys.path.insert(0, directory)
        tasks = __import__(module)
        worker = subprocess.Popen(
            [sys.executable, "-c", f"from prefect.task_worker import serve; from {module} import double; serve(double)"],
            cwd=directory,
        )
        try:
            future = tasks.double.delay(21)
            # The waiter learns of completion from the server's event stream (/events/out);
            # without it `wait` times out and only `result()` reading the run finds the end.
            future.wait(timeout=60)
            seen_in_event_stream = future._final_state is not None
            result = future.result(timeout=30)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    summary = {"task_run_id": str(future.task_run_id), "result": result, "task_key": tasks.double.task_key}
    print(json.dumps({**summary, "seen_in_event_stream": seen_in_event_stream}))
