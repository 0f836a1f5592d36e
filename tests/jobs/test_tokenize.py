"""`genie tokenize` argument checks: every path through pipelines/storage.py, bad ones refused
before Ray or MLflow are touched. (Tokenizing itself runs in the training chain tests, local
and on S3.)"""

from __future__ import annotations

import shutil

import pytest

from jobs.tokenize import main


def run(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_bad_paths_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    clips = tmp_path / "clips"
    clips.mkdir()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "--clips: " in run(["--clips", str(tmp_path / "nope"), "--out", str(tmp_path)], capsys)
    assert f"--out: {a_file} is a file" in run(
        ["--clips", str(clips), "--out", str(a_file)], capsys
    )
    # In a job from a bare `ray job submit`, a relative path would land in Ray's copy: refused.
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    monkeypatch.delenv("GENIE_SUBMIT_DIR", raising=False)
    err = run(["--clips", str(clips), "--out", "tokens-here"], capsys)
    assert "--out 'tokens-here' is relative" in err
    assert not (tmp_path / "tokens-here").exists()


def test_a_finished_output_on_s3_is_not_redone(s3_server, tmp_path, capsys):
    from pipelines import storage

    out = s3_server.uri("tokenize-done")
    storage.write_bytes(storage.join(out, "_SUCCESS"), b"")
    clips = tmp_path / "clips"
    clips.mkdir()
    assert main(["--clips", str(clips), "--out", out]) == 0
    assert f"{out} is complete already ({out}/_SUCCESS)" in capsys.readouterr().out


def logged_model(mlflow_uri: str, folder, stage: str, **config_changes) -> str:
    """An MLflow run whose exported model is `folder`, holding only the model.json a trained
    `stage` model of the `tiny` preset would have (with `config_changes`)."""
    import dataclasses
    import json

    import mlflow

    from jobs.common.tracking import MODEL_URI_TAG
    from models.checkpoint import MODEL_INFO, stage_config

    config = dataclasses.asdict(stage_config(stage, "tiny")) | config_changes
    folder.mkdir()
    (folder / MODEL_INFO).write_text(
        json.dumps({"stage": stage, "preset": "tiny", "config": config})
    )
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("tokenize-pairs")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment("tokenize-pairs")
    )
    run = client.create_run(experiment_id, tags={MODEL_URI_TAG: str(folder)})
    return run.info.run_id


def test_models_that_do_not_pair_are_refused_before_any_work(mlflow_uri, tmp_path, capsys):
    clips, out = tmp_path / "clips", tmp_path / "out"
    clips.mkdir()
    tokenizer = logged_model(mlflow_uri, tmp_path / "tok", "tokenizer")
    wide_lam = logged_model(mlflow_uri, tmp_path / "lam", "lam", frame_width=320)
    another_tokenizer = logged_model(mlflow_uri, tmp_path / "tok2", "tokenizer")
    common = ["--clips", str(clips), "--out", str(out), "--mlflow-uri", mlflow_uri]

    err = run([*common, "--tokenizer", tokenizer, "--lam", wide_lam], capsys)
    assert (
        f"--tokenizer {tokenizer} (run {tokenizer}) reads 90x160x3 frames (HxWxC), "
        f"--lam {wide_lam} (run {wide_lam}) 90x320x3: train both on the same clips"
    ) in err
    err = run([*common, "--tokenizer", tokenizer, "--lam", another_tokenizer], capsys)
    assert f"--lam {another_tokenizer} (run {another_tokenizer}) is a tokenizer model" in err
    err = run([*common, "--tokenizer", tokenizer, "--lam", "genie-lam@no-such-alias"], capsys)
    assert "genie-lam" in err
    shutil.rmtree(tmp_path / "lam")  # the run's exported model deleted since
    assert "model.json" in run([*common, "--tokenizer", tokenizer, "--lam", wide_lam], capsys)
    assert not out.exists()
