"""Start and stop `dagster-daemon` for tests that need queued runs or running sensors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# The daemon stops its threads and its code server on SIGINT within a few seconds. A run it
# launched may keep the code server open until the run ends.
STOP_TIMEOUT_SECONDS = 60


def start_daemon(cwd: Path, environment: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start `dagster-daemon run` for the project's code location, with output in `log_path`.

    `env --default-signal=INT,TERM` undoes the ignored signals that a background shell passes on,
    so the daemon stops cleanly when the test sends SIGINT.
    """
    command = [
        "env", "--default-signal=INT,TERM",
        sys.executable, "-m", "dagster._daemon", "run", "-m", "graphmem_dagster.definitions",
    ]
    log = log_path.open("ab")
    # A session of its own makes the daemon lead a process group that its code server and the
    # runs it launches join, so `stop_daemon(..., end_group=True)` can end them all.
    return subprocess.Popen(
        command, cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def stop_daemon(process: subprocess.Popen, end_group: bool = True) -> None:
    """Stop the daemon with SIGINT, waiting for it, and kill it if it does not stop in time.

    The daemon's code server outlives it while runs it launched are still going, and with Dagster
    1.13 it sometimes stays after they end. `end_group` kills what is left of the process group;
    pass False to let runs in progress finish.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if end_group:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(condition, timeout: float, message: str, interval: float = 1.0, process: subprocess.Popen | None = None, log_path: Path | None = None):
    """Poll `condition` until it returns a true value and return it; fail with `message` on timeout or if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise AssertionError(f"{message}: the daemon exited with code {process.returncode}. Log tail:\n{tail}")
        time.sleep(interval)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
    raise AssertionError(f"{message} within {timeout:.0f} s. Daemon log tail:\n{tail}")


def daemon_environment(**variables: str) -> dict[str, str]:
    """Return this process's environment with `variables` set and the Kafka sensor off unless they turn it on."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GRAPHMEM_KAFKA_")}
    environment.update({"HF_HUB_OFFLINE": "1", **variables})
    return environment
