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
