"""Session fixtures: the real local platform (Ray head + MLflow server), started once.

The platform is the one `make up` starts (platform/local/localctl.py), in a throwaway
GENIE_HOME on free ports, so the tests run beside a user's own `make up` without touching it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Read by Ray when it is first imported, so set before any test module imports it. With the
# first, a driver keeps 127.0.0.1 as the head's address (without it Ray swaps loopback for the
# machine's own IP, where our head does not listen); the second sends the token.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "token"
LOCALCTL = REPO / "platform" / "local" / "localctl.py"
PORT_NAMES = ("RAY", "DASHBOARD", "RAY_CLIENT", "RAY_AGENT", "MLFLOW")


@dataclass(frozen=True)
class LocalPlatform:
    home: Path
    env: dict[str, str]  # the environment that addresses this platform (for subprocesses)
    ports: dict[str, int]

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.ports['RAY']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['DASHBOARD']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['MLFLOW']}"

    def ctl(self, command: str) -> subprocess.CompletedProcess[str]:
        return run_localctl(command, self.env)

    def ray_processes(self, title: str) -> list:
        """This platform's Ray processes whose command line holds `title` (Ray titles a worker
        after its actor or task, `ray::RayTrainWorker`): the descendants of its own raylets,
        never another cluster's on the same machine, such as the user's own `make up`."""
        import psutil

        pointer = self.home / "ray-temp-dir"
        temp_dir = pointer.read_text().strip() if pointer.exists() else str(self.home / "ray")
        found = []
        for process in psutil.process_iter(["cmdline"]):
            command = process.info["cmdline"] or []
            if (
                not command
                or not command[0].endswith("/raylet")
                or temp_dir not in " ".join(command)
            ):
                continue
            for child in process.children(recursive=True):
                try:
                    if title in " ".join(child.cmdline()):
                        found.append(child)
                except psutil.Error:
                    continue
        return found


def free_ports(count: int) -> list[int]:
    """Ports the OS hands out (above Ray's worker range 10002-19999)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_localctl(command: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LOCALCTL), command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_platform(nodes: int = 1) -> LocalPlatform:
    """`make up NODES=nodes` in a fresh GENIE_HOME on free ports; env addresses it."""
    home = Path(tempfile.mkdtemp(prefix="genie-test-"))
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    # The venv's bin first, so `ray`, `genie` and jobs' `python` are this install's.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = dict(os.environ, GENIE_HOME=str(home), PATH=path)
    env.update({f"GENIE_{name}_PORT": str(port) for name, port in ports.items()})
    platform = LocalPlatform(home=home, env=env, ports=ports)
    result = run_localctl("up", env, "--nodes", str(nodes))
    if result.returncode != 0:
        platform.ctl("down")
        pytest.fail(f"local platform did not start:\n{result.stdout}\n{result.stderr}")
    env.update(
        RAY_API_SERVER_ADDRESS=platform.dashboard_url,
        RAY_ADDRESS=platform.gcs_address,
        RAY_AUTH_MODE="token",
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # the head binds 127.0.0.1 only; so must drivers
        MLFLOW_TRACKING_URI=platform.mlflow_url,
    )
    return platform


def stop_platform(platform: LocalPlatform) -> None:
    platform.ctl("down")
    shutil.rmtree(platform.home, ignore_errors=True)


@pytest.fixture(scope="session")
def local_platform():
    platform = start_platform()
    yield platform
    stop_platform(platform)


@pytest.fixture(scope="session")
def ray_cluster(local_platform: LocalPlatform):
    """This test process connected as a driver to the session's real Ray cluster."""
    import ray

    # Workers import test modules too (functions defined in tests are pickled by reference,
    # as `tests.<folder>.<module>`).
    pythonpath = str(REPO)
    ray.init(
        address=local_platform.gcs_address,
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
        logging_level="WARNING",
    )
    yield local_platform
    ray.shutdown()


@pytest.fixture(scope="session")
def mlflow_uri(local_platform: LocalPlatform) -> str:
    """Tracking URI of the session's real MLflow server (SQLite backend)."""
    return local_platform.mlflow_url


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    env: dict[str, str]  # what a process needs to reach it through pyarrow (AWS_ENDPOINT_URL ...)

    def uri(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, *parts])


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on 127.0.0.1 (moto_server) with bucket `genie`; this process's environment
    points pyarrow at it for the session (jobs started by the tests get `env`)."""
    import time
    import urllib.request

    import pyarrow.fs as pafs

    port = free_ports(1)[0]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True).create_dir("genie")
    yield S3Server(endpoint=endpoint, bucket="genie", env=env)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.terminate()
    server.wait(timeout=30)
