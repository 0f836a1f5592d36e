"""`make up NODES=2`: a Ray head plus a second Ray node on this machine, and jobs spreading over
both. Its own platform on free ports, apart from the session's, since a worker node needs Ray's
multi-node mode (Ray's internal ports on all interfaces; dashboard, jobs API and MLflow stay on
127.0.0.1 with token auth). Jobs go in through `ray job submit`, as on a real cluster.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import psutil
import pytest

import tests.curate_videos as cv
from tests.clips import write_clips
from tests.conftest import REPO, LocalPlatform, run_localctl, start_platform, stop_platform

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

TOKEN_FILE = Path.home() / ".ray" / "auth_token"


@pytest.fixture(scope="module")
def two_nodes():
    platform = start_platform(nodes=2)
    yield platform
    stop_platform(platform)


def api(platform: LocalPlatform, path: str) -> dict | list:
    token = TOKEN_FILE.read_text().strip()
    request = urllib.request.Request(
        f"{platform.dashboard_url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def alive_node_ids(platform: LocalPlatform) -> set[str]:
    nodes = api(platform, "/api/v0/nodes?limit=100")["data"]["result"]["result"]
    return {n["node_id"] for n in nodes if n["state"] == "ALIVE"}


def submit(platform: LocalPlatform, *entrypoint: str, timeout: int = 420) -> tuple[str, str]:
    """Run a job to the end through `ray job submit`; returns (submission id, its logs)."""
    # Both nodes share this machine's disk, so the code comes from the checkout itself. (With
    # `--working-dir` the second of two jobs here once lost its working directory mid-run:
    # both jobs shared one package URI.)
    runtime_env = json.dumps({"env_vars": {"PYTHONPATH": str(REPO)}})
    submitted = subprocess.run(
        ["ray", "job", "submit", "--no-wait", "--runtime-env-json", runtime_env, "--", *entrypoint],
        env=platform.env, capture_output=True, text=True, timeout=120, cwd=platform.home,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    words = [w.strip("'") for w in submitted.stdout.split()]
    submission = next(w for w in words if w.startswith("raysubmit_"))
    try:
        subprocess.run(
            ["ray", "job", "logs", "--follow", submission],
            env=platform.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        subprocess.run(["ray", "job", "stop", submission], env=platform.env, capture_output=True)
    logs = subprocess.run(
        ["ray", "job", "logs", submission], env=platform.env, capture_output=True, text=True
    ).stdout
    status = subprocess.run(
        ["ray", "job", "status", submission], env=platform.env, capture_output=True, text=True
    ).stdout
    assert f"Job '{submission}' succeeded" in status, status + logs[-6000:]
    return submission, logs


def job_nodes(platform: LocalPlatform, submission: str, kind: str, name_part: str) -> set[str]:
    """Node ids where the job's tasks or actors (`kind`) whose name contains `name_part` ran,
    from Ray's state API."""
    job_id = api(platform, f"/api/jobs/{submission}")["job_id"]
    entries = api(
        platform,
        f"/api/v0/{kind}?limit=10000&detail=1&filter_keys=job_id&filter_predicates=%3D"
        f"&filter_values={job_id}",
    )["data"]["result"]["result"]
    name = "name" if kind == "tasks" else "class_name"
    return {e["node_id"] for e in entries if name_part in e[name] and e.get("node_id")}


def test_two_nodes_with_their_own_resources_and_loopback_endpoints(two_nodes):
    nodes = api(two_nodes, "/api/v0/nodes?limit=100&detail=1")["data"]["result"]["result"]
    alive = [n for n in nodes if n["state"] == "ALIVE"]
    assert len(alive) == 2
    assert sorted(n["is_head_node"] for n in alive) == [False, True]
    for node in alive:  # each node is its own machine to the scheduler
        assert node["resources_total"]["CPU"] >= 2
        assert node["resources_total"]["memory"] == 4096 << 20
        assert node["resources_total"]["object_store_memory"] == 1024 << 20
    status = run_localctl("status", two_nodes.env)
    assert "2 alive" in status.stdout
    # What we control stays on loopback: dashboard/jobs API (token on) and MLflow.
    leaders = [int((two_nodes.home / f"{s}.pid").read_text()) for s in ("ray", "mlflow")]
    listening = {
        c.laddr.port: c.laddr.ip
        for leader in leaders
        for p in [psutil.Process(leader), *psutil.Process(leader).children(recursive=True)]
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening[two_nodes.ports["DASHBOARD"]] == "127.0.0.1"
    assert listening[two_nodes.ports["MLFLOW"]] == "127.0.0.1"
    url = f"{two_nodes.dashboard_url}/api/jobs/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401


def test_curation_job_spreads_over_both_nodes(two_nodes, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for seed in range(6):
        cv.gameplay(raw / f"game{seed}.mp4", 4.5, seed=seed)
    out = tmp_path / "curated"
    submission, _ = submit(
        two_nodes, "python", "-m", "jobs.curate", "run", "--source", str(raw), "--out", str(out),
        f"mlflow_uri={two_nodes.mlflow_url}", "wave_sources=6",
        "decode.clip_frames=20", "decode.stride_frames=20",
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sources"]["accepted"] == 6, summary["sources"]
    ran_on = job_nodes(two_nodes, submission, "tasks", "score_batch")
    assert ran_on == alive_node_ids(two_nodes), f"scoring ran on {ran_on}"


def test_two_worker_training_spreads_over_both_nodes_with_shared_storage(two_nodes, tmp_path):
    clips = write_clips(tmp_path / "clips", count=4)
    storage = tmp_path / "runs"
    # PACK (the default) would put both workers on one of these nodes: each can hold both.
    submission, _ = submit(
        two_nodes, "python", "-m", "jobs.train", "--stage", "tokenizer", "placement=SPREAD",
        "name=tok-2nodes", f"data={clips}", f"storage_path={storage}",
        f"mlflow_uri={two_nodes.mlflow_url}", "num_workers=2", "steps=5", "window=4",
        "batch_size=2", "log_every=5", "eval_every=5", "checkpoint_every=5",
    )  # fmt: skip
    workers = job_nodes(two_nodes, submission, "actors", "RayTrainWorker")
    assert workers == alive_node_ids(two_nodes), f"training workers ran on {workers}"
    # One run folder in the shared storage path, its checkpoint written there.
    run_id = json.loads((storage / "tok-2nodes" / "result.json").read_text())["run_id"]
    assert any((storage / "tok-2nodes").glob("checkpoint_*"))
    history = mlflow.MlflowClient(two_nodes.mlflow_url).get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [5]
