"""Jobs log through one MLflow helper that never takes a job down with it."""

from __future__ import annotations

import json

import mlflow
import pytest

from jobs.common.tracking import Tracker, find_unfinished_run, run_key_tags, tracked_run
from tests.conftest import free_ports


def test_run_records_params_metrics_tags_and_artifacts(mlflow_uri, tmp_path):
    artifact = tmp_path / "config.yaml"
    artifact.write_text("lr: 0.1\n")
    with tracked_run(
        "genie-test-tracking", "unit", uri=mlflow_uri, tags={"stage": "test"}
    ) as tracker:
        tracker.log_params({"lr": 0.1, "preset": "tiny"})
        tracker.log_metrics({"loss": 2.0}, step=0)
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.log_artifact(artifact, "config")
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1", "preset": "tiny"}
    assert run.data.tags["stage"] == "test"
    assert [m.value for m in client.get_metric_history(tracker.run_id, "loss")] == [2.0, 1.0]
    assert [a.path for a in client.list_artifacts(tracker.run_id, "config")] == [
        "config/config.yaml"
    ]


def test_a_continued_run_keeps_its_id_and_history(mlflow_uri):
    first = Tracker.open("genie-test-tracking", "resumed", uri=mlflow_uri)
    first.log_metrics({"loss": 3.0}, step=0)
    again = Tracker.open("genie-test-tracking", "resumed", uri=mlflow_uri, run_id=first.run_id)
    again.log_metrics({"loss": 2.5}, step=1)
    again.finish()
    history = mlflow.MlflowClient(tracking_uri=mlflow_uri).get_metric_history(first.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 2.5)]


def test_unreachable_server_does_not_stop_the_job(tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    with tracked_run("genie-test-tracking", "offline", uri=dead, fallback_dir=tmp_path) as tracker:
        tracker.log_params({"lr": 0.1})
        tracker.log_metrics({"loss": 1.5}, step=3)
    assert not tracker.active
    assert "unreachable" in capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 3, "loss": 1.5}]


def test_failed_block_marks_the_run_failed(mlflow_uri):
    with (
        pytest.raises(RuntimeError),
        tracked_run("genie-test-tracking", "boom", uri=mlflow_uri) as t,
    ):
        raise RuntimeError("training diverged")
    assert mlflow.MlflowClient(tracking_uri=mlflow_uri).get_run(t.run_id).info.status == "FAILED"


def test_run_keys_with_quotes_find_their_unfinished_run(mlflow_uri):
    """A run key is a storage path plus a run name: quotes in it must not break the search
    that finds the run to continue (an MLflow filter string cannot escape them)."""
    experiment = "genie-test-run-keys"
    keys = ["/runs/bob's-run", '/runs/say "hi"', "/runs/both ' and \"", "/runs/plain"]
    opened = {
        key: Tracker.open(experiment, "keyed", uri=mlflow_uri, tags=run_key_tags(key)).run_id
        for key in keys
    }
    for key, run_id in opened.items():
        assert find_unfinished_run(experiment, key, mlflow_uri) == run_id, key
    Tracker(opened[keys[0]], mlflow_uri, None).finish()
    assert find_unfinished_run(experiment, keys[0], mlflow_uri) is None  # finished: start anew
    assert find_unfinished_run(experiment, "/runs/other", mlflow_uri) is None
