#!/usr/bin/env python3
"""Start, stop and inspect the local platform: a Ray head node (plus worker nodes) and MLflow.

    python platform/local/localctl.py up [--nodes N] | down | status   (or: make up [NODES=N])

With one node (the default) everything it starts listens on 127.0.0.1. With --nodes N > 1 it
also starts N-1 Ray worker nodes on this machine, each with its own CPUs, object store and
memory, as separate machines would be. Ray only accepts worker nodes when it runs in its
multi-node mode, and in that mode Ray's internal ports (GCS, raylets, object managers, agents,
workers) listen on all interfaces; the dashboard/jobs API and MLflow stay on 127.0.0.1, token
auth stays on (platform/README.md, "Ports"). Ray's jobs API wants the token in ~/.ray/auth_token.
State and logs live in $GENIE_HOME (default: .genie/ in the repo), which `up` keeps 0700: no
other user of the machine reaches Ray's sockets and 0777 folders, the unpacked job code or
MLflow's SQLite file. `up` twice is harmless; `down` stops only the processes `up` started: a
pid file counts only while its process still runs the command `up` recorded beside it.
Ports come from the environment so a test session can run beside a user's platform:
GENIE_RAY_PORT, GENIE_DASHBOARD_PORT, GENIE_RAY_CLIENT_PORT, GENIE_RAY_AGENT_PORT, GENIE_MLFLOW_PORT.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import stat
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path

# Its sibling processes.py (the services' pid files and processes), found both when run as a
# script (its folder is then first on sys.path) and when loaded from its path (the tests), as
# platform/ is not a package.
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from processes import (  # noqa: E402
    BIN,
    HOST,
    REPO,
    Platform,
    Ports,
    http_status,
    port_in_use,
    running_pid,
    start,
    stop,
)

TOKEN_FILE = Path.home() / ".ray" / "auth_token"


def ensure_token() -> str:
    """Ray's auth token, created once like `ray get-auth-token --generate` but readable by us only."""
    if not TOKEN_FILE.exists():
        TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex())
    return TOKEN_FILE.read_text().strip()


def is_private_dir(path: Path) -> bool:
    """A real folder (no symlink) of ours that no one else may enter (mode 0700 or tighter)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def make_private(platform: Platform) -> None:
    """GENIE_HOME 0700 (made so, or tightened), MLflow's SQLite file 0600, and where Ray's temp
    dir cannot live in GENIE_HOME, a fresh private folder for it (mkdtemp: 0700, a name no one
    can guess, so no one can plant it first in a shared /tmp)."""
    home = platform.home
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = home.stat()
    if info.st_uid != os.getuid():
        raise SystemExit(f"GENIE_HOME {home} belongs to another user; choose a folder of your own")
    if info.st_mode & 0o077:
        print(f"{home}: was {stat.S_IMODE(info.st_mode):o}, now 700 (ours alone)")
        home.chmod(0o700)
    database = home / "mlflow" / "mlflow.db"
    if database.exists():
        database.chmod(0o600)
    temp_dir = platform.ray_temp_dir
    if not temp_dir or (temp_dir.parent != home and not is_private_dir(temp_dir.parent)):
        private = tempfile.mkdtemp(prefix="genie-")
        (home / "ray-temp-dir").write_text(private)


def logical_cpus() -> int:
    """CPUs the head advertises: twice the cores, at least 4 (GENIE_RAY_CPUS overrides).

    Training workers hold one CPU each for their whole run, and Ray Data needs CPUs to feed
    them; on a 2-core laptop, advertising only 2 would leave the readers none and hang.
    """
    return int(os.environ.get("GENIE_RAY_CPUS") or max(4, 2 * (os.cpu_count() or 1)))


def node_cpus(platform: Platform) -> int:
    """CPUs each node advertises: the head's share split evenly, at least 2 a node."""
    return logical_cpus() if not platform.multi_node else max(2, logical_cpus() // platform.nodes)


def node_limits(platform: Platform) -> list[str]:
    """Multi-node only: a fixed object store and memory per node, so each node is its own
    machine to the scheduler (by default every node claims most of this machine's memory)."""
    if not platform.multi_node:
        return []
    return [
        "--object-store-memory", str(int(os.environ.get("GENIE_RAY_OBJECT_STORE_MB", 1024)) << 20),
        "--memory", str(int(os.environ.get("GENIE_RAY_NODE_MEMORY_MB", 4096)) << 20),
    ]  # fmt: skip


def ray_command(platform: Platform) -> list[str]:
    p = platform.ports
    return [
        str(BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address", HOST, "--port", str(p.ray),
        "--dashboard-host", HOST, "--dashboard-port", str(p.dashboard),
        "--ray-client-server-port", str(p.ray_client),
        "--dashboard-agent-listen-port", str(p.ray_agent),
        "--temp-dir", str(platform.ray_temp_dir), "--num-cpus", str(node_cpus(platform)),
        *node_limits(platform),
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def worker_node_command(platform: Platform) -> list[str]:
    """A Ray worker node joining the head, sharing its temp dir (one machine, one session dir).

    Its dashboard agent needs a port of its own (the head's is taken on this machine)."""
    return [
        str(BIN / "ray"), "start", "--block", "--disable-usage-stats",
        "--address", platform.gcs_address, "--node-ip-address", HOST,
        "--dashboard-agent-listen-port", str(free_port()),
        "--temp-dir", str(platform.ray_temp_dir), "--num-cpus", str(node_cpus(platform)),
        *node_limits(platform),
    ]  # fmt: skip


def worker_services(platform: Platform) -> list[str]:
    return [f"ray-node-{i}" for i in range(1, platform.nodes)]


def mlflow_command(platform: Platform) -> list[str]:
    store = platform.home / "mlflow"
    return [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination", str(store / "artifacts"),
        "--host", HOST, "--port", str(platform.ports.mlflow), "--workers", "1",
    ]  # fmt: skip


def alive_nodes(platform: Platform, token: str) -> int:
    """Alive Ray nodes, from the dashboard's state API (0 when it does not answer)."""
    request = urllib.request.Request(
        f"{platform.dashboard_url}/api/v0/nodes?limit=1000",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            nodes = json.load(response)["data"]["result"]["result"]
    except (urllib.error.URLError, OSError, KeyError, ValueError):
        return 0
    return sum(1 for node in nodes if node.get("state") == "ALIVE")


def recorded_nodes(platform: Platform) -> int | None:
    """The node count the running platform was started with (None if none is recorded)."""
    path = platform.home / "platform.json"
    if not path.exists():
        return None
    return int(json.loads(path.read_text()).get("nodes", 1))


def head_ready(platform: Platform, token: str | None) -> bool:
    """The head takes jobs: its jobs API answers, and so does its dashboard agent, which runs
    them. The jobs API answers seconds before the agent, and a job submitted in between fails
    with "No available agent to submit job" after 10 s (seen with the machine busy)."""
    agent_health = f"http://{HOST}:{platform.ports.ray_agent}/api/healthz"
    return (
        http_status(f"{platform.dashboard_url}/api/jobs/", token) == 200
        and http_status(agent_health) == 200
    )


def up(platform: Platform) -> None:
    make_private(platform)
    token = ensure_token()
    recorded = recorded_nodes(platform)
    if running_pid(platform, "ray") and recorded not in (None, platform.nodes):
        # A loopback-only head cannot take worker nodes, and a head's mode cannot change live.
        raise SystemExit(
            f"the Ray head here runs with {recorded} node(s), not {platform.nodes}; "
            "stop it first (make down), then start again"
        )
    for service, port in (("mlflow", platform.ports.mlflow), ("ray", platform.ports.dashboard)):
        if not running_pid(platform, service) and port_in_use(port):
            raise SystemExit(
                f"port {port} on {HOST} is taken by another program, so {service} cannot start; "
                f"set GENIE_{'DASHBOARD' if service == 'ray' else 'MLFLOW'}_PORT to a free port"
            )
    start(platform, "mlflow", mlflow_command(platform), f"{platform.mlflow_url}/health", None)
    start(
        platform, "ray", ray_command(platform), None, token,
        ready=lambda: head_ready(platform, token),
    )  # fmt: skip
    for number, service in enumerate(worker_services(platform), start=1):
        start(
            platform, service, worker_node_command(platform), None, token,
            ready=lambda n=number: alive_nodes(platform, token) >= n + 1,
        )  # fmt: skip
    record = {"home": str(platform.home), "ports": asdict(platform.ports), "nodes": platform.nodes}
    (platform.home / "platform.json").write_text(json.dumps(record, indent=2))
    (platform.home / "env").write_text("\n".join(platform.env_lines()) + "\n")
    status(platform)


def down(platform: Platform) -> None:
    # Worker nodes first (whatever count `up` used), then the head they report to.
    for pid_file in sorted(platform.home.glob("ray-node-*.pid")):
        stop(platform, pid_file.stem)
    stop(platform, "ray")
    stop(platform, "mlflow")
    # A stale pointer here makes the next ray.init() with this temp dir try to join a dead cluster.
    if platform.ray_temp_dir:
        (platform.ray_temp_dir / "ray_current_cluster").unlink(missing_ok=True)


def status(platform: Platform) -> None:
    token = TOKEN_FILE.read_text().strip() if TOKEN_FILE.exists() else None
    ray_ok = running_pid(platform, "ray") and head_ready(platform, token)
    mlflow_ok = (
        running_pid(platform, "mlflow") and http_status(f"{platform.mlflow_url}/health") == 200
    )
    print(f"Ray head     {'up  ' if ray_ok else 'down'}  dashboard  {platform.dashboard_url}")
    print(f"             {'    '}  address    {platform.gcs_address} (token auth on, {TOKEN_FILE})")
    if ray_ok and token:
        print(f"             {'    '}  nodes      {alive_nodes(platform, token)} alive")
    print(f"MLflow       {'up  ' if mlflow_ok else 'down'}  UI         {platform.mlflow_url}")
    print(f"State, logs  {platform.home}")
    if ray_ok:
        print("\nSubmit a job to this cluster:")
        print(f"  source {platform.home / 'env'}")
        print(
            "  ray job submit --working-dir . -- python -m jobs.synth --out /tmp/genie-raw --videos 2"
        )
        print("  ray job list; ray job logs <submission id>")
    if not (ray_ok and mlflow_ok):
        print("\nStart it with: make up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="localctl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--nodes", type=int, default=1, help="Ray nodes for `up`: the head plus NODES-1 workers"
    )
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error(f"--nodes must be >= 1, got {args.nodes}")
    home = Path(os.environ.get("GENIE_HOME", REPO / ".genie")).resolve()
    nodes = (
        args.nodes
        if args.command == "up"
        else (recorded_nodes(Platform(home, Ports.from_env())) or 1)
    )
    platform = Platform(home=home, ports=Ports.from_env(), nodes=nodes)
    {"up": up, "down": down, "status": status}[args.command](platform)
    return 0


if __name__ == "__main__":
    sys.exit(main())
