"""The whole chain with every path on s3:// (a real S3 API: moto_server on 127.0.0.1), each
stage submitted to the real local platform with `genie submit`, as a user on a cluster would:
curate -> tokenizer -> LAM -> tokenize -> dynamics -> eval; then a training run killed mid-way
resumes from its checkpoint on S3."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import mlflow
import pytest

from pipelines import storage
from tests.conftest import LocalPlatform, S3Server
from tests.curate_videos import gameplay

pytestmark = pytest.mark.cluster

SHORT_CLIPS = ["decode.clip_frames=20", "decode.stride_frames=20"]  # 2 s clips at 10 FPS
TINY_TRAINING = ["window=4", "batch_size=2", "windows_per_clip=2", "log_every=2", "eval_every=2",
                 "checkpoint_every=2"]  # fmt: skip


def submit(platform: LocalPlatform, s3: S3Server, *command: object, wait: bool = True):
    env_flags = [flag for key in s3.env for flag in ("--env", key)]
    return subprocess.run(
        [sys.executable, "-m", "jobs.submit", *env_flags, *([] if wait else ["--no-wait"]), "--",
         "python", "-m", *map(str, command)],
        env={**platform.env, **s3.env}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def check(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def run_id(s3: S3Server, name: str) -> str:
    return storage.read_json(s3.uri("runs", name, "result.json"))["run_id"]


def train(platform, s3, stage: str, data: str, name: str, *extra: str) -> str:
    check(submit(platform, s3, "jobs.train", "--stage", stage, f"data={data}", f"name={name}",
                 f"storage_path={s3.uri('runs')}", *TINY_TRAINING, *extra))  # fmt: skip
    return run_id(s3, name)


@pytest.mark.timeout(2400)  # six jobs, each a `ray job submit`; ~15 min on 2 busy cores
def test_chain_with_every_path_on_s3(local_platform, s3_server, tmp_path):
    platform, s3 = local_platform, s3_server
    for seed in (1, 2):
        video = gameplay(tmp_path / f"game{seed}.mp4", seconds=6, seed=seed)
        storage.write_bytes(s3.uri("raw", video.name), video.read_bytes())

    check(submit(platform, s3, "jobs.curate", "run", "--source", s3.uri("raw") + "/",
                 "--out", s3.uri("cur"), *SHORT_CLIPS))  # fmt: skip
    assert storage.read_json(s3.uri("cur", "summary.json"))["sources"]["accepted"] == 2
    clips = s3.uri("cur", "clips")

    tokenizer = train(platform, s3, "tokenizer", clips, "tok", "steps=2")
    lam = train(platform, s3, "lam", clips, "lam", "steps=2")
    assert storage.is_file(s3.uri("runs", "tok", "model", "model.json"))  # weights on S3

    check(submit(platform, s3, "jobs.tokenize", "--clips", clips, "--out", s3.uri("tok"),
                 "--window", 4, "--tokenizer", tokenizer, "--lam", lam))  # fmt: skip
    assert storage.exists(s3.uri("tok", "_SUCCESS"))
    assert storage.read_json(s3.uri("tok", "summary.json"))["clips_tokenized"] >= 4

    dynamics = train(platform, s3, "dynamics", s3.uri("tok", "tokens"), "dyn", "steps=2")
    out = check(submit(platform, s3, "jobs.evaluate", "--clips", clips, "--samples", 2,
                       "--frames", 4, "--maskgit-steps", 1, "--dynamics", dynamics,
                       "--name", "eval-s3"))  # fmt: skip
    assert "tokenizer_psnr" in out
    # The tokenizer and LAM came from the dynamics run's lineage, not from `latest`.
    client = mlflow.MlflowClient(tracking_uri=platform.mlflow_url)
    (evaluation,) = client.search_runs(
        [client.get_experiment_by_name("genie-eval").experiment_id],
        filter_string="tags.mlflow.runName = 'eval-s3'",
    )
    assert evaluation.data.tags["upstream.tokenizer_run"] == tokenizer
    assert evaluation.data.tags["upstream.lam_run"] == lam


def test_a_killed_run_resumes_from_its_checkpoint_on_s3(local_platform, s3_server, tmp_path):
    from tests.clips import write_clips

    platform, s3 = local_platform, s3_server
    local = write_clips(tmp_path / "clips", count=3)
    for file in local.iterdir():
        storage.write_bytes(s3.uri("killed", "clips", file.name), file.read_bytes())
    command = ("jobs.train", "--stage", "tokenizer", f"data={s3.uri('killed', 'clips')}",
               "name=tok-killed", f"storage_path={s3.uri('runs')}", "steps=12", *TINY_TRAINING)  # fmt: skip
    started = submit(platform, s3, *command, wait=False)
    submission = re.search(r"raysubmit_\w+", check(started)).group(0)
    deadline = time.monotonic() + 600
    while not checkpoints(s3, "tok-killed"):
        assert time.monotonic() < deadline, "no checkpoint on S3 within 10 minutes"
        time.sleep(1)
    subprocess.run(["ray", "job", "stop", submission], env=platform.env, capture_output=True,
                   timeout=120, check=True)  # fmt: skip
    step = max(storage.read_json(storage.join(c, "train_state.json"))["step"]
               for c in checkpoints(s3, "tok-killed"))  # fmt: skip
    assert step < 12, "the run finished before it was killed"

    out = check(submit(platform, s3, *command))
    assert re.search(r"resumed from step \d+", out), out[-3000:]
    assert storage.read_json(s3.uri("runs", "tok-killed", "result.json"))["metrics"]["step"] == 12


def checkpoints(s3: S3Server, name: str) -> list[str]:
    """Checkpoint folders of run `name` on S3 that hold a complete train state."""
    import pyarrow.fs as pafs

    fs, root = storage.filesystem(s3.uri("runs", name))
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return []
    found = fs.get_file_info(pafs.FileSelector(root, recursive=False))
    return [
        f"s3://{info.path}"
        for info in found
        if info.base_name.startswith("checkpoint_")
        and storage.is_file(f"s3://{info.path}/train_state.json")
    ]
