"""The local platform a user gets from `make up`: Ray head with token auth, MLflow, all on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import LOCALCTL, REPO, LocalPlatform, start_platform, stop_platform


def http_status(url: str, headers: dict[str, str] | None = None) -> int | None:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


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
    """`up` returns once the head's dashboard agent answers too: a job submitted before it is
    up fails ("No available agent to submit job"), and the agent starts seconds after the jobs
    API. `down` leaves no process behind."""
    platform = start_platform()
    try:
        agent_health = f"http://127.0.0.1:{platform.ports['RAY_AGENT']}/api/healthz"
        assert http_status(agent_health) == 200
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


# ---------------------------------------------------------------- a shared machine


def load_localctl():
    """platform/local/localctl.py as a module (platform/ is not a package)."""
    spec = importlib.util.spec_from_file_location("localctl", LOCALCTL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["localctl"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_up_waits_for_a_service_already_running_until_it_is_ready(tmp_path):
    """`make up` right after another `make up` (or while the head's agent still starts) returns
    only once the service is ready: a job submitted earlier fails."""
    localctl = load_localctl()
    platform = localctl.Platform(home=tmp_path / ".genie", ports=localctl.Ports.from_env())
    command = [sys.executable, "-c", "import time; time.sleep(120)"]
    localctl.start(platform, "sleeper", command, None, None, ready=lambda: True)
    try:
        answers = iter([False, False, True])
        asked = []
        localctl.start(
            platform, "sleeper", command, None, None,
            ready=lambda: asked.append(1) or next(answers),
        )  # fmt: skip
        assert len(asked) == 3
    finally:  # `down` runs in another process; here the sleeper is this process's child
        pid = int(platform.pid_file("sleeper").read_text())
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def others_can_reach(path: Path) -> bool:
    """Another user (neither owner nor group) can get to `path`: every folder above lets
    others through."""
    return all(mode(folder) & stat.S_IXOTH for folder in path.parents)


def test_no_other_user_can_reach_the_platforms_files(local_platform: LocalPlatform, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text("print('unpacked')\n")
    submit = subprocess.run(
        ["ray", "job", "submit", "--working-dir", str(code), "--", "python", "job.py"],
        env=local_platform.env, capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert submit.returncode == 0 and "unpacked" in submit.stdout, submit.stderr
    home = local_platform.home
    assert mode(home) == 0o700
    assert mode(home / "mlflow" / "mlflow.db") & 0o077 == 0, "MLflow's database is readable"
    paths = [Path(root, name) for root, dirs, files in os.walk(home) for name in dirs + files]
    unpacked = [p for p in paths if p.name == "job.py" and "runtime_resources" in p.parts]
    assert unpacked, "found no unpacked job code: the check looked in the wrong place"
    # Ray makes its own folders 0777 (sockets, sessions, job code): only GENIE_HOME above keeps
    # other users out, so nothing under it may be reachable by them.
    assert any(mode(p) & stat.S_IWOTH for p in paths if p.is_dir() and not p.is_symlink())
    open_to_others = [p for p in paths if mode(p) & (stat.S_IWOTH | stat.S_IROTH)]
    assert not [p for p in open_to_others if others_can_reach(p)]


def test_make_private_makes_genie_home_0700_and_mlflows_database_0600(tmp_path):
    localctl = load_localctl()
    fresh = localctl.Platform(home=tmp_path / "new" / ".genie", ports=localctl.Ports.from_env())
    localctl.make_private(fresh)
    assert mode(fresh.home) == 0o700
    old = localctl.Platform(home=tmp_path / "old", ports=localctl.Ports.from_env())
    (old.home / "mlflow").mkdir(parents=True)
    (old.home / "mlflow" / "mlflow.db").write_text("")
    old.home.chmod(0o755)
    (old.home / "mlflow" / "mlflow.db").chmod(0o644)
    localctl.make_private(old)  # a platform made before: tightened
    assert (mode(old.home), mode(old.home / "mlflow" / "mlflow.db")) == (0o700, 0o600)


def test_a_long_genie_home_puts_ray_below_a_private_folder_no_one_can_plant(tmp_path):
    localctl = load_localctl()
    home = tmp_path / ("long" * 10) / ".genie"
    platform = localctl.Platform(home=home, ports=localctl.Ports.from_env())
    # What another user could plant before: the name the temp dir used to derive from the home.
    digest = hashlib.sha1(str(home).encode()).hexdigest()[:10]
    planted = Path(tempfile.gettempdir()) / f"genie-ray-{digest}"
    planted.mkdir(mode=0o777, exist_ok=True)
    made = []
    try:
        localctl.make_private(platform)
        made.append(platform.ray_temp_dir.parent)
        assert not platform.ray_temp_dir.is_relative_to(planted)
        assert made[0].parent == Path(tempfile.gettempdir()) and mode(made[0]) == 0o700
        assert made[0].stat().st_uid == os.getuid() and not made[0].is_symlink()
        localctl.make_private(platform)  # `up` again: the same folder
        assert platform.ray_temp_dir.parent == made[0]
        made[0].chmod(0o777)  # no longer private (gone and made again by someone): a new one
        localctl.make_private(platform)
        made.append(platform.ray_temp_dir.parent)
        assert made[1] != made[0] and mode(made[1]) == 0o700
    finally:
        for folder in (planted, *made):
            shutil.rmtree(folder, ignore_errors=True)


def sleeper(seconds: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"],
                            start_new_session=True)  # fmt: skip


def test_down_never_signals_a_process_its_pid_file_does_not_describe(tmp_path):
    home = tmp_path / ".genie"
    home.mkdir()
    stranger, ours = sleeper(120), sleeper(121)
    try:
        # A pid reused by another program, and a pid file with no command recorded beside it.
        (home / "mlflow.pid").write_text(str(stranger.pid))
        (home / "mlflow.command.json").write_text(json.dumps(["mlflow", "server"]))
        (home / "ray-node-1.pid").write_text(str(stranger.pid))
        # The process `up` started, as recorded.
        (home / "ray.pid").write_text(str(ours.pid))
        (home / "ray.command.json").write_text(json.dumps(ours.args))
        down = subprocess.Popen(
            [sys.executable, str(LOCALCTL), "down"], env=dict(os.environ, GENIE_HOME=str(home)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert ours.wait(timeout=60) == -signal.SIGTERM
        output, _ = down.communicate(timeout=60)
        assert down.returncode == 0, output
        time.sleep(0.5)
        assert stranger.poll() is None, "down signalled a process it did not start"
        assert "mlflow: pid" in output and "leaving it alone" in output
        assert f"ray-node-1: pid {stranger.pid}" in output and "no recorded command" in output
        assert "ray: stopped" in output
        # A pid now another program's is forgotten; one from before commands were recorded is
        # kept (with the way to stop it by hand printed), never signalled.
        assert [p.name for p in home.iterdir()] == ["ray-node-1.pid"]
    finally:
        for process in (stranger, ours):
            if process.poll() is None:
                process.kill()
                process.wait()
