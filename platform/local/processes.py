"""The services `localctl.py up` starts, and their bookkeeping: where each one's pid file,
recorded command and log live in GENIE_HOME (`Platform`), and starting, finding and stopping
their processes (`start`, `running_pid`, `stop`).

A sibling module of localctl.py, imported by it (platform/ is not a package). Every service runs
in its own process group; `start` records its pid and the command it runs beside each other, and
a pid counts as the service's only while its process still runs that command, so a pid reused
by another program after a crash or a reboot is never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: ray, mlflow and the python jobs run with
HOST = "127.0.0.1"
# A node joining a head on a busy 2-core machine can take minutes; a failure shows sooner.
START_TIMEOUT_S = int(os.environ.get("GENIE_START_TIMEOUT_S", 180))
STOP_TIMEOUT_S = 30
MAX_RAY_TEMP_DIR = 40  # Ray's socket paths below its temp dir must stay under 107 bytes


@dataclass(frozen=True)
class Ports:
    ray: int
    dashboard: int
    ray_client: int
    ray_agent: int
    mlflow: int

    @staticmethod
    def from_env() -> Ports:
        def port(name: str, default: int) -> int:
            return int(os.environ.get(f"GENIE_{name}_PORT", default))

        return Ports(
            ray=port("RAY", 6379),
            dashboard=port("DASHBOARD", 8265),
            ray_client=port("RAY_CLIENT", 10001),
            ray_agent=port("RAY_AGENT", 52365),
            mlflow=port("MLFLOW", 5000),
        )


@dataclass(frozen=True)
class Platform:
    home: Path
    ports: Ports
    nodes: int = 1  # Ray nodes: the head plus nodes-1 worker nodes

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1

    @property
    def ray_temp_dir(self) -> Path | None:
        """Ray's temp dir (sessions, sockets, logs, unpacked job code). Ray makes its folders
        0777, so it must sit below a folder only we can enter: `ray/` in GENIE_HOME, or, where
        that path is too long, `ray/` in a private folder with a random name in the system temp
        dir, which `up` makes (`make_private`) and records here (None before that)."""
        path = self.home / "ray"
        if len(str(path)) <= MAX_RAY_TEMP_DIR:
            return path
        pointer = self.home / "ray-temp-dir"
        return Path(pointer.read_text().strip()) / "ray" if pointer.exists() else None

    @property
    def dashboard_url(self) -> str:
        return f"http://{HOST}:{self.ports.dashboard}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.ports.mlflow}"

    @property
    def gcs_address(self) -> str:
        return f"{HOST}:{self.ports.ray}"

    def pid_file(self, service: str) -> Path:
        return self.home / f"{service}.pid"

    def command_file(self, service: str) -> Path:
        """The command `up` started `service` with: a pid counts only while it runs this."""
        return self.home / f"{service}.command.json"

    def log_file(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.log"

    def env_lines(self) -> list[str]:
        return [
            f"export PATH={BIN}:$PATH",
            f"export RAY_API_SERVER_ADDRESS={self.dashboard_url}",  # for `ray job ...`
            f"export RAY_ADDRESS={self.gcs_address}",  # for drivers run here (ray.init)
            "export RAY_AUTH_MODE=token",
            "export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0",  # drivers reach the loopback-only head
            f"export MLFLOW_TRACKING_URI={self.mlflow_url}",
        ]


def process_command(pid: int) -> list[str] | None:
    """The command line process `pid` runs (None if there is no such process)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except PermissionError:
        return []  # not ours to read, so not ours
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def running_pid(platform: Platform, service: str) -> int | None:
    """The pid `up` recorded for `service`, if that process still runs the command `up` started
    it with. A pid file alone is not trusted: after a crash or a reboot its pid may belong to
    another program, which must never be signalled (the pid file is then removed)."""
    path, command_file = platform.pid_file(service), platform.command_file(service)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    running = process_command(pid)
    if running is not None and not command_file.exists():  # from a localctl before this check
        print(f"{service}: pid {pid} in {path} has no recorded command, so it is not signalled; "
              f"if it is this platform's, stop it with: kill -- -{pid}")  # fmt: skip
        return None
    started = json.loads(command_file.read_text()) if running is not None else []
    if started and running[-len(started) :] == started:
        return pid
    if running is not None:
        print(f"{service}: pid {pid} in {path} runs {' '.join(running)[:100]!r}, not the command "
              "`up` recorded: leaving it alone")  # fmt: skip
    path.unlink()
    command_file.unlink(missing_ok=True)
    return None


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


def http_status(url: str, token: str | None = None) -> int | None:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def service_env(platform: Platform) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # jobs' `python` is the venv's
        RAY_AUTH_MODE="token",
        # "0" binds every Ray listener (GCS, raylet, agents) to 127.0.0.1, not only the
        # dashboard, but then `ray start` refuses worker nodes; "1" is Ray's multi-node mode.
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1" if platform.multi_node else "0",
        MLFLOW_TRACKING_URI=platform.mlflow_url,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    return env


def start(
    platform: Platform,
    service: str,
    command: list[str],
    ready_url: str | None,
    token: str | None,
    ready: Callable[[], bool] | None = None,
) -> None:
    """Start `service` in its own process group and wait until `ready_url` answers 200, or,
    where `ready` is given (a node, which has no URL of its own; the head, ready only once its
    dashboard agent is too), until `ready()` says so. A service already running is waited for
    the same way, so `up` returns only once everything takes work, whoever started it."""
    if ready is None:
        ready = lambda: http_status(ready_url, token) == 200  # noqa: E731
    pid = running_pid(platform, service)
    if pid:
        if not wait_ready(ready, alive=lambda: True):
            raise SystemExit(
                f"{service} runs (pid {pid}) but is not ready after {START_TIMEOUT_S} s; "
                f"see {platform.log_file(service)}, or stop it (make down) and start again"
            )
        print(f"{service}: already running (pid {pid})")
        return
    log = platform.log_file(service)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=service_env(platform),
            cwd=REPO,
            start_new_session=True,  # its own process group: `down` stops exactly this tree
            # MLflow's database and artifacts are ours alone; Ray keeps the user's umask for what
            # jobs write (their outputs), and its own folders sit below a private one.
            umask=0o077 if service == "mlflow" else -1,
        )
    platform.command_file(service).write_text(json.dumps(command))
    platform.pid_file(service).write_text(str(process.pid))
    if not wait_ready(ready, alive=lambda: process.poll() is None):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        stop(platform, service)
        raise SystemExit(f"{service} did not start; last lines of {log}:\n{tail}")
    print(f"{service}: started (pid {process.pid}), log {log}")


def wait_ready(ready: Callable[[], bool], alive: Callable[[], bool]) -> bool:
    """True once `ready()` says so; False once `alive()` does not, or after START_TIMEOUT_S."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if not alive() or time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def stop(platform: Platform, service: str) -> None:
    pid = running_pid(platform, service)
    if pid is None:
        print(f"{service}: not running")
        return
    # Only the leader gets SIGTERM: `ray start --block` then stops its node in order, while
    # signalling the whole group at once leaves raylet and agents hanging.
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.3)
    else:
        print(f"{service}: still running after {STOP_TIMEOUT_S}s, killing it")
        os.killpg(pid, signal.SIGKILL)
    platform.pid_file(service).unlink(missing_ok=True)
    platform.command_file(service).unlink(missing_ok=True)
    print(f"{service}: stopped")
