"""The local platform a user gets from `make up`: Ray head with token auth, MLflow, all on loopback."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, LocalPlatform, start_platform, stop_platform


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def ray_token() -> str:
    return (Path.home() / ".ray" / "auth_token").read_text().strip()


def platform_processes(platform: LocalPlatform) -> list[psutil.Process]:
    """Every process `up` started (both service trees, Ray workers included)."""
    processes = []
    for service in ("ray", "mlflow"):
        leader = psutil.Process(int((platform.home / f"{service}.pid").read_text()))
        processes += [leader, *leader.children(recursive=True)]
    return processes


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback too
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def processes_mentioning(text: str) -> list[str]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if text in cmdline:
            found.append(f"{p.pid}: {cmdline[:120]}")
    return found


def test_job_submit_with_token_runs_and_logs_are_readable(local_platform: LocalPlatform, tmp_path):
    out = tmp_path / "raw"
    submit = subprocess.run(
        ["ray", "job", "submit", "--working-dir", str(REPO), "--no-wait", "--",
         "python", "-m", "jobs.synth", "--out", str(out), "--videos", "1",
         "--duration-range", "2,3", "--no-bad"],
        env=local_platform.env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr
    job_id = next(
        w.strip("'") for w in submit.stdout.split() if w.strip("'").startswith("raysubmit_")
    )
    logs = subprocess.run(
        ["ray", "job", "logs", "--follow", job_id],
        env=local_platform.env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert logs.returncode == 0, logs.stderr
    status = subprocess.run(
        ["ray", "job", "status", job_id], env=local_platform.env, capture_output=True, text=True
    )
    assert f"Job '{job_id}' succeeded" in status.stdout, status.stdout + logs.stdout
    assert "gameplay_0000" in logs.stdout  # the job's own progress output came back
    assert (out / "manifest.parquet").exists()


def test_jobs_api_refuses_requests_without_the_right_token(local_platform: LocalPlatform):
    url = f"{local_platform.dashboard_url}/api/jobs/"
    assert http_status(url) == 401
    assert http_status(url, {"Authorization": "Bearer not-the-token"}) == 403
    assert http_status(url, {"Authorization": f"Bearer {ray_token()}"}) == 200
    # The CLI without the token mode is refused too, not silently let in.
    env = {k: v for k, v in local_platform.env.items() if k != "RAY_AUTH_MODE"}
    listing = subprocess.run(["ray", "job", "list"], env=env, capture_output=True, text=True)
    assert listing.returncode != 0


def test_every_listening_socket_is_on_loopback(local_platform: LocalPlatform):
    listening = [
        (p.pid, c.laddr.ip, c.laddr.port)
        for p in platform_processes(local_platform)
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening, "found no listening sockets at all: the check looked in the wrong place"
    exposed = [entry for entry in listening if not is_loopback(entry[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_mlflow_server_records_metrics_and_refuses_foreign_hosts(local_platform, mlflow_uri):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.create_experiment(f"platform-check-{time.time_ns()}")
    run = client.create_run(experiment)
    for step, loss in enumerate([3.0, 2.0, 1.5]):
        client.log_metric(run.info.run_id, "loss", loss, step=step)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 2.0), (2, 1.5)]
    assert http_status(f"{mlflow_uri}/health") == 200
    assert http_status(f"{mlflow_uri}/api/2.0/mlflow/experiments/search?max_results=1",
                       {"Host": "attacker.example"}) == 403  # fmt: skip


def test_up_twice_is_harmless(local_platform: LocalPlatform):
    pids = {s: (local_platform.home / f"{s}.pid").read_text() for s in ("ray", "mlflow")}
    again = local_platform.ctl("up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == 2
    assert pids == {s: (local_platform.home / f"{s}.pid").read_text() for s in ("ray", "mlflow")}
    assert json.loads((local_platform.home / "platform.json").read_text())["ports"]


@pytest.mark.slow
def test_up_status_down_leaves_no_process_behind():
    platform = start_platform()
    try:
        status = platform.ctl("status")
        assert status.returncode == 0
        assert f"{platform.dashboard_url}" in status.stdout
        assert f"{platform.mlflow_url}" in status.stdout
        assert "ray job submit" in status.stdout
        started = platform_processes(platform)
        assert len(started) > 5 and processes_mentioning(str(platform.home))
    finally:
        stop_platform(platform)
    time.sleep(1)
    assert [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert processes_mentioning(str(platform.home)) == []
    assert "down" in platform.ctl("status").stdout
