"""Models loaded as a set that belongs together (`jobs.common.tracking.resolve_world`), against
the real MLflow server: a dynamics run's recorded tokenizer and LAM are the defaults, a
tokenizer from another lineage is refused naming both, and so is one of another vocabulary."""

from __future__ import annotations

import mlflow
import pyarrow.fs as pafs
import pytest

from jobs.common.tracking import MODEL_URI_TAG, resolve_world
from jobs.training.checkpoint import export_model
from models.checkpoint import CheckpointMismatch, build_model, config_dict

pytestmark = pytest.mark.slow
ALIAS = "latest-lineage"  # this test's own alias: other tests' `latest-tiny` stay untouched


def trained_run(client, experiment: str, stage: str, folder, tags=None, **config) -> str:
    run_id = client.create_run(experiment, tags=tags or {}).info.run_id
    info = {"stage": stage, "preset": "tiny", "step": 1,
            "config": {**config_dict(stage, "tiny"), **config}}  # fmt: skip
    export_model(build_model(stage, "tiny"), pafs.LocalFileSystem(), str(folder / run_id), info)
    client.set_tag(run_id, MODEL_URI_TAG, str(folder / run_id))
    return run_id


def register(client, stage: str, run_id: str) -> None:
    name = f"genie-{stage}"
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(name, ALIAS, version.version)


def test_world_models_load_as_a_lineage_consistent_set(mlflow_uri, tmp_path):
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.create_experiment(f"lineage-{tmp_path.name}")
    tok_a = trained_run(client, experiment, "tokenizer", tmp_path)
    lam_a = trained_run(client, experiment, "lam", tmp_path)
    upstream = {"upstream.tokenizer_run": tok_a, "upstream.lam_run": lam_a}
    dynamics = trained_run(client, experiment, "dynamics", tmp_path, upstream)
    tok_b = trained_run(client, experiment, "tokenizer", tmp_path)  # a later run, other data
    register(client, "dynamics", dynamics)
    register(client, "tokenizer", tok_b)  # `latest` is now the wrong tokenizer for `dynamics`
    register(client, "lam", lam_a)

    stages = {"tokenizer": None, "lam": None, "dynamics": None}
    world = resolve_world(stages, preset="lineage", uri=mlflow_uri)
    assert {stage: run for stage, (run, _) in world.items()} == {
        "tokenizer": tok_a, "lam": lam_a, "dynamics": dynamics}  # fmt: skip

    with pytest.raises(ValueError, match=f"tokenizer {tok_b}.*dynamics run {dynamics}"):
        resolve_world({**stages, "tokenizer": tok_b}, preset="lineage", uri=mlflow_uri)

    # A dynamics model with no recorded lineage over another vocabulary: refused by its config.
    codes = config_dict("dynamics", "tiny")["num_codes"]
    other = trained_run(client, experiment, "dynamics", tmp_path, num_codes=2 * codes)
    with pytest.raises(CheckpointMismatch, match=f"run {tok_b} and dynamics run {other}"):
        resolve_world({"tokenizer": tok_b, "dynamics": other}, preset="lineage", uri=mlflow_uri)
