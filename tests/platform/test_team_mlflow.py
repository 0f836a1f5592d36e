"""The team MLflow of platform/mlflow/ for real: PostgreSQL (Debian's package), the server command
of docker-compose.yml with basic auth and an --allowed-hosts list, artifacts served through the
server, and a training job on the local Ray cluster logging to it with a user's credentials.
Only the artifact destination differs from the compose file: a folder here instead of s3://.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.clips import write_clips
from tests.conftest import REPO, LocalPlatform, free_ports

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

COMPOSE = REPO / "platform" / "mlflow" / "docker-compose.yml"
AUTH_INI = REPO / "platform" / "mlflow" / "basic_auth.ini"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Postgres:
    port: int
    password: str  # of the superuser `mlflow`, as in docker-compose.yml


@dataclass(frozen=True)
class TeamMlflow:
    url: str
    admin: tuple[str, str]
    artifacts: Path
    postgres: Postgres


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (`make test-cluster` installs them when it may)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` account the package made."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pytest.importorskip(
        "psycopg", reason="psycopg[binary] (the PostgreSQL driver) is not installed in this venv"
    )
    binaries = postgres_bin()
    if binaries is None:
        pytest.skip("no PostgreSQL server: `make test-cluster` installs Debian's as root")
    home = Path(tempfile.mkdtemp(prefix="genie-pg-"))
    data, password = home / "data", secrets.token_hex(16)
    (home / "pw").write_text(password)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        os.chmod(home, 0o700)
        shutil.chown(home / "pw", "postgres")
    (port,) = free_ports(1)
    initdb = as_postgres_user([
        str(binaries / "initdb"), "-D", str(data), "-U", "mlflow", f"--pwfile={home / 'pw'}",
        "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8",
    ])  # fmt: skip
    subprocess.run(initdb, check=True, capture_output=True, timeout=120)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home}"
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data)]
    start = as_postgres_user([*pg_ctl, "-l", str(home / "log"), "-w", "-o", options, "start"])
    subprocess.run(start, check=True, capture_output=True, timeout=120)
    try:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="mlflow", password=password, dbname="postgres",
            autocommit=True,
        ) as connection:  # fmt: skip
            # What platform/mlflow/initdb/ and POSTGRES_DB do in the compose file.
            connection.execute("CREATE DATABASE mlflow")
            connection.execute("CREATE DATABASE mlflow_auth")
        yield Postgres(port=port, password=password)
    finally:
        subprocess.run(as_postgres_user([*pg_ctl, "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def compose_command(postgres: Postgres, port: int, artifacts: Path) -> list[str]:
    """docker-compose.yml's `mlflow server` command, pointed at this machine's services."""
    command = yaml.safe_load(COMPOSE.read_text())["services"]["mlflow"]["command"]
    values = {
        "--backend-store-uri": f"postgresql://mlflow@127.0.0.1:{postgres.port}/mlflow",
        "--artifacts-destination": str(artifacts),
        "--allowed-hosts": f"127.0.0.1:{port},localhost:{port}",
        "--host": "127.0.0.1",
        "--port": str(port),
        "--workers": "1",
    }
    assert set(values) <= set(command), "the compose command changed: update this test"
    return [BIN / "mlflow" if w == "mlflow" else values.get(command[i - 1], w)
            for i, w in enumerate(command)]  # fmt: skip


@pytest.fixture(scope="module")
def team_mlflow(postgres: Postgres) -> Iterator[TeamMlflow]:
    home = Path(tempfile.mkdtemp(prefix="genie-team-mlflow-"))
    (port,) = free_ports(1)
    admin = ("admin", secrets.token_hex(12))
    env = dict(
        os.environ,
        PGHOST="127.0.0.1",  # basic_auth.ini's host-less database_uri resolves through these
        PGPORT=str(postgres.port),
        PGPASSWORD=postgres.password,
        MLFLOW_AUTH_CONFIG_PATH=str(AUTH_INI),
        MLFLOW_AUTH_ADMIN_PASSWORD=admin[1],
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(32),
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    command = [str(w) for w in compose_command(postgres, port, home / "artifacts")]
    log = (home / "mlflow.log").open("wb")
    server = subprocess.Popen(
        command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while status(f"{url}/health") != 200:
        if server.poll() is not None or time.monotonic() > deadline:
            os.killpg(server.pid, signal.SIGKILL)
            pytest.fail(f"MLflow did not start:\n{(home / 'mlflow.log').read_text()[-3000:]}")
        time.sleep(0.5)
    try:
        yield TeamMlflow(url=url, admin=admin, artifacts=home / "artifacts", postgres=postgres)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
        # Nothing fell back to SQLite in the working directory: users live in PostgreSQL.
        assert not list(home.glob("*.db")), list(home.glob("*.db"))
        shutil.rmtree(home, ignore_errors=True)


def status(url: str, user: tuple[str, str] | None = None, **headers: str) -> int | None:
    request = urllib.request.Request(url, headers=headers)
    if user:
        token = b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def create_user(team: TeamMlflow, name: str) -> tuple[str, str]:
    from mlflow.server.auth.client import AuthServiceClient

    password = secrets.token_hex(12)
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = team.admin
    try:
        AuthServiceClient(team.url).create_user(name, password)
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    return name, password


def test_team_mlflow_refuses_anonymous_and_foreign_host_requests(team_mlflow: TeamMlflow):
    search = f"{team_mlflow.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert status(search) == 401
    assert status(search, ("admin", "not-the-password")) == 401
    assert status(search, team_mlflow.admin) == 200
    port = team_mlflow.url.rsplit(":", 1)[1]
    assert status(search, team_mlflow.admin, Host="attacker.example") == 403
    assert status(search, team_mlflow.admin, Host=f"192.0.2.1:{port}") == 403  # not listed


def test_training_job_logs_to_postgres_backed_mlflow_with_proxied_artifacts(
    local_platform: LocalPlatform, team_mlflow: TeamMlflow, tmp_path, monkeypatch
):
    import mlflow
    import psycopg

    user = create_user(team_mlflow, "genie-jobs")
    clips = write_clips(tmp_path / "clips", count=4)
    storage = tmp_path / "runs"
    # The job's workers get the user's credentials from the job's runtime_env, as they would
    # from a Kubernetes Secret in the pod environment on the cluster.
    runtime_env = {
        "env_vars": {
            "MLFLOW_TRACKING_USERNAME": user[0],
            "MLFLOW_TRACKING_PASSWORD": user[1],
            "PYTHONPATH": str(REPO),
        }
    }
    job = subprocess.run(
        ["ray", "job", "submit", "--runtime-env-json", json.dumps(runtime_env), "--",
         "python", "-m", "jobs.train", "--stage", "tokenizer", "name=tok-pg", f"data={clips}",
         f"storage_path={storage}", f"mlflow_uri={team_mlflow.url}", "steps=5", "window=4",
         "batch_size=2", "log_every=5", "eval_every=5", "checkpoint_every=5"],
        env=local_platform.env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert job.returncode == 0 and "succeeded" in job.stdout, job.stdout[-5000:] + job.stderr
    run_id = json.loads((storage / "tok-pg" / "result.json").read_text())["run_id"]

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])
    client = mlflow.MlflowClient(tracking_uri=team_mlflow.url)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["steps"] == "5" and run.data.tags["stage"] == "tokenizer"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [5]
    assert [m.step for m in client.get_metric_history(run_id, "heldout_psnr")] == [0, 5]
    # Artifacts went through the server (the job had no direct access to the store).
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    # The model is registered by the URI of its weights: only its model.json goes through MLflow.
    assert [a.path for a in client.list_artifacts(run_id, "model")] == ["model/model.json"]
    assert list(team_mlflow.artifacts.rglob("model.json"))
    # The numbers are in PostgreSQL itself.
    pg = team_mlflow.postgres
    with psycopg.connect(host="127.0.0.1", port=pg.port, user="mlflow", password=pg.password,
                         dbname="mlflow") as connection:  # fmt: skip
        rows = connection.execute(
            "SELECT key, step FROM metrics WHERE run_uuid = %s AND key = 'loss'", (run_id,)
        ).fetchall()
    assert rows == [("loss", 5)]
    # Another user, never granted anything (default_permission NO_PERMISSIONS), cannot read it.
    outsider = create_user(team_mlflow, "outsider")
    run_url = f"{team_mlflow.url}/api/2.0/mlflow/runs/get?run_id={run_id}"
    assert status(run_url, outsider) == 403
    assert status(run_url, user) == 200
