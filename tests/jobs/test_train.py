"""Training stages on the real local Ray cluster and MLflow server, at tiny size on CPU."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
import torch

from jobs.common.config import load_config
from jobs.common.tracking import resolve_model
from jobs.train import run
from jobs.training.config import TrainConfig
from models.checkpoint import load_trained
from models.dynamics import DynamicsModel
from models.tokenizer import VideoTokenizer
from tests.clips import source_of, write_clips

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips"), count=6, sources=3)


def config_for(
    stage: str, name: str, data: Path, storage: Path, mlflow_uri: str, *extra: str
) -> TrainConfig:
    return load_config(
        TrainConfig,
        None,
        [f"stage={stage}", f"name={name}", f"data={data}", f"storage_path={storage}",
         f"mlflow_uri={mlflow_uri}", "window=4", "batch_size=2", "log_every=5", *extra],
    )  # fmt: skip


def logged_steps(mlflow_uri: str, run_id: str, metric: str) -> list[int]:
    history = mlflow.MlflowClient(tracking_uri=mlflow_uri).get_metric_history(run_id, metric)
    return sorted(m.step for m in history)


def test_chain_tokenizer_ddp_then_lam_tokenize_and_dynamics_fsdp(
    ray_cluster, mlflow_uri, clips, tmp_path
):
    from jobs.tokenize import main as tokenize

    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    scratch_before = set(Path(tempfile.gettempdir()).glob("genie-ckpt-*"))
    tokenizer = run(config_for("tokenizer", "tok-ddp", clips, tmp_path, mlflow_uri,
                               "num_workers=2", "steps=10", "eval_every=10", "checkpoint_every=10"))  # fmt: skip
    assert logged_steps(mlflow_uri, tokenizer["run_id"], "loss") == [5, 10]
    assert logged_steps(mlflow_uri, tokenizer["run_id"], "heldout_psnr") == [0, 10]
    # Checkpoints persist under storage_path; their scratch copies do not pile up in /tmp.
    assert set(Path(tempfile.gettempdir()).glob("genie-ckpt-*")) == scratch_before
    finished = client.get_run(tokenizer["run_id"])
    assert finished.info.status == "FINISHED"
    assert finished.data.params["num_workers"] == "2"
    assert finished.data.tags["stage"] == "tokenizer"
    registered = client.get_registered_model("genie-tokenizer")
    assert (
        client.get_model_version("genie-tokenizer", registered.aliases["latest-tiny"]).run_id
        == tokenizer["run_id"]
    )
    # Registered by URI: MLflow holds model.json only, the weights stay in storage.
    artifacts = [a.path for a in client.list_artifacts(tokenizer["run_id"], "model")]
    assert artifacts == ["model/model.json"]
    run_id, local = resolve_model("genie-tokenizer@latest-tiny", mlflow_uri)
    assert run_id == tokenizer["run_id"] and local == str(tmp_path / "tok-ddp" / "model")
    assert isinstance(load_trained(local), VideoTokenizer)

    lam = run(config_for("lam", "lam-1", clips, tmp_path, mlflow_uri, "steps=5", "eval_every=5",
                         "checkpoint_every=5"))  # fmt: skip
    out = tmp_path / "tokenized"
    assert tokenize(["--clips", str(clips), "--out", str(out), "--window", "4",
                     "--tokenizer", tokenizer["run_id"], "--lam", lam["run_id"], "--mlflow-uri", mlflow_uri]) == 0  # fmt: skip
    shards = pq.read_table(out / "tokens").to_pylist()
    assert len(shards) == 6  # every kept clip
    for row in shards:
        assert row["shape"] == [32, 12, 20]
        assert len(row["tokens"]) == 32 * 12 * 20
        assert len(row["actions"]) == 31 and all(0 <= a < 8 for a in row["actions"])
        assert (row["tokenizer_run_id"], row["lam_run_id"]) == (tokenizer["run_id"], lam["run_id"])
        assert row["source_id"] == source_of(int(row["clip_id"][4:]), 3)  # the held-out split's

    # The stage that needs sharding at paper size: FSDP2 over 2 workers, its weights exported
    # shard by shard (loaded below as a plain model).
    dynamics = run(config_for("dynamics", "dyn-1", out / "tokens", tmp_path, mlflow_uri, "steps=5",
                              "eval_every=5", "checkpoint_every=5", "num_workers=2", "strategy=fsdp",
                              f"tokenizer_run={tokenizer['run_id']}", f"lam_run={lam['run_id']}"))  # fmt: skip
    tags = client.get_run(dynamics["run_id"]).data.tags
    assert tags["upstream.tokenizer_run"] == tokenizer["run_id"]
    assert tags["upstream.lam_run"] == lam["run_id"]
    assert logged_steps(mlflow_uri, dynamics["run_id"], "heldout_masked_loss") == [0, 5]
    assert isinstance(load_trained(resolve_model(dynamics["run_id"], mlflow_uri)[1]), DynamicsModel)

    from jobs.evaluate import main as evaluate

    out = tmp_path / "eval"
    assert evaluate(["--clips", str(clips), "--out", str(out), "--samples", "2", "--frames", "10",
                     "--maskgit-steps", "2", "--tokenizer", tokenizer["run_id"], "--lam", lam["run_id"],
                     "--dynamics", dynamics["run_id"], "--mlflow-uri", mlflow_uri]) == 0  # fmt: skip
    for name in ("comparison.mp4", "comparison.gif", "actions.mp4", "delta_psnr_vs_t.png",
                 "motion_by_action.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    experiment = client.get_experiment_by_name("genie-eval")
    (evaluation,) = client.search_runs([experiment.experiment_id])
    logged = evaluation.data.metrics
    for metric in ("tokenizer_psnr", "tokenizer_ssim", "delta_psnr_t4", "generation_psnr",
                   "generation_psnr_still", "fvd", "motion_generated_action0_dx"):  # fmt: skip
        assert metric in logged, metric
    assert logged["fvd"] >= 0 and 0 < logged["tokenizer_psnr"] < 100
    assert evaluation.data.tags["upstream.dynamics_run"] == dynamics["run_id"]


def kill_a_worker_after_step(
    platform, mlflow_uri: str, run_name: str, step: int, killed: list[int], timeout_s: float = 600
) -> None:
    """Fault injection from outside, as a crash would: SIGKILL a training worker process once
    `step` is logged, i.e. after the checkpoint before it was committed and training went on."""
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        experiment = client.get_experiment_by_name("genie-tokenizer")
        runs = experiment and client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.mlflow.runName = '{run_name}'"
        )
        if runs and step in logged_steps(mlflow_uri, runs[0].info.run_id, "loss"):
            break
        time.sleep(0.5)
    for process in platform.ray_processes("RayTrainWorker"):
        process.kill()
        killed.append(process.pid)
        return


def test_killed_worker_resumes_from_checkpoint_and_logs_every_step_once(
    ray_cluster, mlflow_uri, clips, tmp_path
):
    common = ("steps=30", "eval_every=10", "checkpoint_every=10", "optim.warmup_steps=5")
    baseline = run(config_for("tokenizer", "tok-steady", clips, tmp_path, mlflow_uri, *common))

    killed: list[int] = []
    killer = threading.Thread(
        target=kill_a_worker_after_step, args=(ray_cluster, mlflow_uri, "tok-killed", 15, killed)
    )
    killer.start()
    resumed = run(config_for("tokenizer", "tok-killed", clips, tmp_path, mlflow_uri, *common))
    killer.join()

    assert killed, "no training worker was killed: the fault was never injected"
    assert resumed["metrics"]["step"] == 30
    assert logged_steps(mlflow_uri, resumed["run_id"], "loss") == [5, 10, 15, 20, 25, 30]
    # The untrained model's held-out score is logged once, not again by the restarted attempt.
    assert logged_steps(mlflow_uri, resumed["run_id"], "heldout_psnr") == [0, 10, 20, 30]
    final = {name: mlflow.MlflowClient(tracking_uri=mlflow_uri).get_run(r["run_id"]).data.metrics
             for name, r in (("steady", baseline), ("resumed", resumed))}  # fmt: skip
    print(f"final loss steady={final['steady']['loss']:.6f} resumed={final['resumed']['loss']:.6f}")
    assert final["resumed"]["loss"] == pytest.approx(final["steady"]["loss"], rel=1e-3)
    assert final["resumed"]["heldout_psnr"] == pytest.approx(
        final["steady"]["heldout_psnr"], abs=0.01
    )


def rng_of(checkpoint, rank: int) -> torch.Tensor:
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / f"rng_rank{rank}.pt", weights_only=True)["cpu"]


def test_ddp_ranks_draw_different_masks_and_a_resumed_run_restores_each_ranks_rng(
    ray_cluster, mlflow_uri, tmp_path
):
    from jobs.benchmarks.train import synthetic_tokens

    tokens = synthetic_tokens(tmp_path / "tokens", count=4, frames=8, preset="tiny")
    common = ("num_workers=2", "log_every=2", "eval_every=2", "checkpoint_every=2")
    steady = run(config_for("dynamics", "dyn-steady", tokens, tmp_path, mlflow_uri, "steps=4",
                            *common))  # fmt: skip
    run(config_for("dynamics", "dyn-resumed", tokens, tmp_path, mlflow_uri, "steps=2", *common))
    resumed = run(config_for("dynamics", "dyn-resumed", tokens, tmp_path, mlflow_uri, "steps=4",
                             *common))  # fmt: skip
    assert resumed["metrics"]["step"] == 4
    # Each rank seeded with seed + rank: the two draw different MaskGIT masks from here on.
    states = [rng_of(steady["checkpoint"], rank) for rank in (0, 1)]
    masks = []
    for state in states:
        torch.set_rng_state(state)
        masks.append(torch.rand(4, 12, 20) < 0.5)
    assert not torch.equal(masks[0], masks[1])
    # The run resumed at step 2 restored each rank's own RNG: after the same draws, each rank's
    # state is the uninterrupted run's for that rank.
    for rank in (0, 1):
        assert torch.equal(rng_of(resumed["checkpoint"], rank), states[rank]), rank


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "..", "a/b", "bob's-run"])
def test_a_run_name_that_is_not_a_plain_name_is_refused_before_any_work(
    name, clips, tmp_path, capsys
):
    from jobs.train import main

    with pytest.raises(SystemExit) as exit_:
        main(["--stage", "tokenizer", f"data={clips}", f"storage_path={tmp_path / 'runs'}",
              f"name={name}"])  # fmt: skip
    assert exit_.value.code == 2
    assert "config field 'name' must be a plain name" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not Path("/tmp/abs").exists()


def test_stage_that_disagrees_with_the_preset_is_refused(clips, tmp_path, capsys):
    from jobs.train import main

    with pytest.raises(SystemExit) as exit_:
        main(["--stage", "lam", "--preset", "demo-tokenizer", f"data={clips}", "name=x",
              f"storage_path={tmp_path}"])  # fmt: skip
    assert exit_.value.code == 2
    assert "--stage lam disagrees with the preset 'demo-tokenizer'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--preset", "demo-tokenizer", "stage=lam"], ["--stage", "tokenizer", "stage=lam"],
     ["--preset", "demo-lam", "--stage", "lam", "stage=dynamics"]],
    ids=["override-vs-preset", "override-vs-flag", "override-vs-both"],
)  # fmt: skip
def test_a_stage_override_that_disagrees_is_refused_naming_the_field(
    argv, tmp_path, capsys, monkeypatch
):
    """A `stage=` override is one more source of the stage: it must agree with `--stage` and
    the preset's `stage:`, checked before any work (training never starts)."""
    import jobs.train
    from jobs.train import main

    def no_work(config):
        raise AssertionError(f"training started as stage {config.stage}")

    monkeypatch.setattr(jobs.train, "run", no_work)
    with pytest.raises(SystemExit) as exit_:
        main([*argv, f"data={tmp_path}", "name=x", f"storage_path={tmp_path / 'runs'}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "config field 'stage'" in err and "disagrees with" in err
    assert not (tmp_path / "runs").exists()


def token_shards(folder: Path, pairs: list[tuple[str, str]]) -> Path:
    """Token shards as `genie tokenize` writes them, one clip per (tokenizer run, LAM run)."""
    import numpy as np
    import pyarrow as pa

    from pipelines.tokenize import TOKEN_SCHEMA

    rows = [{"clip_id": f"c{i}", "tokens": np.zeros(8 * 12 * 20, np.int16), "shape": [8, 12, 20],
             "actions": np.zeros(7, np.int8), "tokenizer_run_id": tok, "lam_run_id": lam}
            for i, (tok, lam) in enumerate(pairs)]  # fmt: skip
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=TOKEN_SCHEMA), folder / "part-0.parquet")
    return folder


def test_dynamics_records_the_runs_its_tokens_came_from_and_refuses_others(tmp_path, capsys):
    import argparse

    from jobs.train import main, resolve_config

    data = token_shards(tmp_path / "tokens", [("tok-a", "lam-a")] * 3)
    args = argparse.Namespace(stage="dynamics", preset=None,
                              overrides=[f"data={data}", "name=d", "mlflow_uri=file:///tmp/x"])  # fmt: skip
    config = resolve_config(args)
    assert (config.tokenizer_run, config.lam_run) == ("tok-a", "lam-a")
    with pytest.raises(SystemExit):
        main(["--stage", "dynamics", f"data={data}", "name=d", "tokenizer_run=tok-b"])
    assert ("config field 'tokenizer_run' is 'tok-b', but the token shards in "
            f"{data} were made by tokenizer run 'tok-a'") in capsys.readouterr().err  # fmt: skip
    mixed = token_shards(tmp_path / "mixed", [("tok-a", "lam-a"), ("tok-b", "lam-a")])
    with pytest.raises(SystemExit):
        main(["--stage", "dynamics", f"data={mixed}", "name=d"])
    assert "mixes token shards of 2 tokenizer/LAM pairs" in capsys.readouterr().err
