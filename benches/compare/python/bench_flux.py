"""Times the Python engine Flux (PyPI package flux-core) on one workload.

    python bench_flux.py WORKLOAD N

WORKLOAD is one of sequential, map, parallel, replay, server. Prints exactly
one line of JSON to stdout:

    {"workload": ..., "n": N, "seconds": ..., "per_step_us": ...}

Everything else, Flux's own logging included, goes to stderr (or, for the
server and worker subprocesses, to log files in the run's working directory).
Each run works in a fresh temporary directory holding its own .flux/ home and
SQLite database; the directory is removed after a successful run and kept,
with its path printed, after a failed one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKFLOWS_FILE = HERE / "workflows.py"
WORKER_NAME = "bench-worker"
# Bounds on the server workload's waits, so a broken setup fails instead of hanging.
STARTUP_TIMEOUT = 60.0
RUN_TIMEOUT = 900.0


class BenchError(Exception):
    """A workload could not be measured: setup failed or the workflow's result was wrong."""


def log(message: str) -> None:
    print(f"bench_flux: {message}", file=sys.stderr, flush=True)


def expected_total(n: int) -> int:
    """What the workflows return for input n: the sum of add_one(i) for i in 0..n-1."""
    return n * (n + 1) // 2


def check_result(what: str, n: int, state: str, output: object) -> None:
    if state != "COMPLETED":
        raise BenchError(f"{what} with input {n} ended in state {state}: {output!r}")
    if output != expected_total(n):
        raise BenchError(f"{what} with input {n} returned {output!r}, expected {expected_total(n)}")


def check_context(what: str, n: int, ctx) -> None:
    output = ctx.output
    # A failed task reaches the workflow wrapped in Flux's ExecutionError.
    if isinstance(output, BaseException) and getattr(output, "inner_exception", None):
        output = output.inner_exception
    check_result(what, n, ctx.state.value, output)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


# --- in-process workloads --------------------------------------------------


def run_inline(workflow, n: int) -> float:
    """Times one in-process `workflow.run(n)`.

    An untimed run with input 1 first creates the database schema and
    registers the workflow, so the timed run measures the workflow alone.
    """
    check_context(workflow.name, 1, workflow.run(1))
    seconds, ctx = timed(lambda: workflow.run(n))
    check_context(workflow.name, n, ctx)
    return seconds


def run_replay(workflows, n: int) -> float:
    """Times re-running a completed execution of `sequential` by its id.

    In flux-core 0.87.5, `workflow.run(execution_id=...)` loads the execution
    with its whole event log from the database and, finding it finished,
    returns the recorded result without running any task again.
    """
    from flux import ExecutionEventType

    first = workflows.sequential.run(n)
    check_context("sequential", n, first)
    recorded = sum(1 for e in first.events if e.type == ExecutionEventType.TASK_COMPLETED)
    if recorded != n:
        raise BenchError(f"the first run recorded {recorded} completed tasks, expected {n}")

    calls_before = workflows.calls
    seconds, ctx = timed(lambda: workflows.sequential.run(execution_id=first.execution_id))

    if workflows.calls != calls_before:
        raise BenchError(f"replay executed add_one {workflows.calls - calls_before} times, expected 0")
    if ctx.execution_id != first.execution_id:
        raise BenchError(f"replay returned execution {ctx.execution_id}, not {first.execution_id}")
    check_context("replayed sequential", n, ctx)
    return seconds


# --- server + worker workload -----------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body: object = None, timeout: float = 10.0) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


class Service:
    """A Flux CLI subprocess in its own process group, logging to a file."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str]):
        self.name = name
        self.log_path = workdir / f"{name}.log"
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                args,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ensure_running(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"flux {self.name} exited with code {code}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM the whole group (the worker's runner children too), SIGKILL if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"flux {self.name} did not stop on SIGTERM; killing it")
        # The leader may be gone while a child it started lives on.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def wait_until(what: str, ready: Callable[[], bool], services: list[Service]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        for service in services:
            service.ensure_running()
        try:
            if ready():
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {STARTUP_TIMEOUT:.0f}s waiting for {what}")
        time.sleep(0.1)


def run_server(n: int, workdir: Path) -> float:
    """Times one `sequential` execution of n tasks on a Flux server with one worker.

    The server and the worker are started with Flux's CLI, the workflow file
    is registered with `flux workflow register`, and the execution is
    submitted with POST /workflows/default/sequential/run/sync, which answers
    once the execution has finished.
    """
    url = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "FLUX_SERVER_HOST": "127.0.0.1",
        "FLUX_SERVER_PORT": url.rsplit(":", 1)[1],
        "FLUX_WORKERS__SERVER_URL": url,
        "FLUX_WORKERS__BOOTSTRAP_TOKEN": secrets.token_hex(16),
        # Auth is off; without this the server refuses anonymous POSTs.
        "FLUX_SECURITY__AUTH__ALLOW_ANONYMOUS": "true",
    }
    flux_cli = str(Path(sys.executable).with_name("flux"))
    services: list[Service] = []
    try:
        services.append(Service("server", [flux_cli, "start", "server"], workdir, env))
        wait_until(
            "the server",
            lambda: http_json("GET", f"{url}/health").get("status") == "healthy",
            services,
        )

        services.append(
            Service("worker", [flux_cli, "start", "worker", WORKER_NAME], workdir, env),
        )
        wait_until(
            "the worker to connect",
            lambda: any(
                w["name"] == WORKER_NAME for w in http_json("GET", f"{url}/workers?status=online")
            ),
            services,
        )

        register = subprocess.run(
            [flux_cli, "workflow", "register", str(WORKFLOWS_FILE), "--server-url", url],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
            stderr=sys.stderr,
        )
        # The CLI reports a failed registration on stderr but exits 0: ask the server.
        try:
            http_json("GET", f"{url}/workflows/default/sequential")
        except urllib.error.HTTPError as error:
            raise BenchError(
                f"workflow not registered (flux workflow register exited {register.returncode}, "
                f"server answered {error.code})",
            ) from error

        def run_remote(size: int) -> dict:
            try:
                return http_json(
                    "POST",
                    f"{url}/workflows/default/sequential/run/sync",
                    body=size,
                    timeout=RUN_TIMEOUT,
                )
            except urllib.error.HTTPError as error:
                detail = error.read().decode(errors="replace")
                raise BenchError(f"run request failed with {error.code}: {detail}") from error

        def settled(result: dict) -> dict:
            # Flux answers a sync run once WORKFLOW_COMPLETED is in the log, and the answer's
            # state can still say RUNNING then; the status endpoint catches up (untimed).
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while result.get("state") == "RUNNING" and time.monotonic() < deadline:
                time.sleep(0.05)
                result = http_json(
                    "GET",
                    f"{url}/workflows/default/sequential/status/{result['execution_id']}",
                )
            return result

        # Untimed: the first execution pays for the worker's first claim.
        warmup = settled(run_remote(1))
        check_result("sequential on the server", 1, warmup["state"], warmup["output"])

        seconds, result = timed(lambda: run_remote(n))
        result = settled(result)
        check_result("sequential on the server", n, result["state"], result["output"])
        for service in services:
            service.ensure_running()
        return seconds
    except BaseException:
        for service in services:
            log(f"last lines of {service.log_path}:\n{service.log_tail()}")
        raise
    finally:
        for service in reversed(services):
            service.stop()


# --- entry point -------------------------------------------------------------


def measure(workload: str, n: int, workdir: Path) -> float:
    if workload == "server":
        return run_server(n, workdir)

    # Imported only now: importing Flux reads its configuration.
    import workflows

    if workload == "sequential":
        return run_inline(workflows.sequential, n)
    if workload == "map":
        return run_inline(workflows.mapped, n)
    if workload == "parallel":
        return run_inline(workflows.fan_out, n)
    return run_replay(workflows, n)


WORKLOADS = ("sequential", "map", "parallel", "replay", "server")


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in WORKLOADS or not sys.argv[2].isdigit():
        log(f"usage: {sys.argv[0]} {{{','.join(WORKLOADS)}}} N")
        return 2
    workload, n = sys.argv[1], int(sys.argv[2])
    if n < 1:
        log("N must be at least 1")
        return 2

    # Keep the real stdout for the result line and point file descriptor 1 at
    # stderr, so nothing else (Flux logs to stdout) can reach the caller's pipe.
    sys.stdout.flush()
    result_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    # A terminated benchmark still runs its `finally` blocks and stops the
    # server and worker it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = Path(tempfile.mkdtemp(prefix="flux-bench-"))
    home = workdir / ".flux"
    home.mkdir()
    # Flux reads its settings from the environment on first use: point the
    # home and database at this run's directory, whatever the caller has set.
    os.environ["FLUX_HOME"] = str(home)
    os.environ["FLUX_DATABASE_URL"] = f"sqlite:///{home / 'flux.db'}"
    os.chdir(workdir)
    sys.path.insert(0, str(HERE))
    # Importing workflows.py must not leave a __pycache__ in the repository.
    sys.dont_write_bytecode = True

    try:
        seconds = measure(workload, n, workdir)
    except BenchError as error:
        log(f"{workload} {n} failed: {error}")
        log(f"working directory kept: {workdir}")
        return 1
    except BaseException:
        log(f"working directory kept: {workdir}")
        raise

    shutil.rmtree(workdir, ignore_errors=True)
    line = {"workload": workload, "n": n, "seconds": seconds, "per_step_us": seconds * 1e6 / n}
    print(json.dumps(line), file=result_out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
