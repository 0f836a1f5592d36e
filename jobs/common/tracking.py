"""The one MLflow helper every job logs through.

A job must never die because the tracking server is down: `Tracker.open` checks the server
first, and when it cannot be reached the job goes on, says so once, and keeps its metrics in
`metrics.jsonl` beside its outputs so nothing is lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobs.common.config import plain_name

log = logging.getLogger("genie.tracking")
DEFAULT_URI = "http://127.0.0.1:5000"


def tracking_uri(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def server_reachable(uri: str, timeout_s: float = 3.0) -> bool:
    if not uri.startswith("http"):
        return True  # a file: or sqlite: store needs no server
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parents[2],
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


class Tracker:
    """One MLflow run, or a local fallback when the server cannot be reached."""

    def __init__(self, run_id: str | None, uri: str, fallback: Path | None):
        self.run_id = run_id
        self.uri = uri
        self.fallback = fallback

    @property
    def active(self) -> bool:
        return self.run_id is not None

    @classmethod
    def open(
        cls,
        experiment: str,
        run_name: str,
        *,
        uri: str | None = None,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
        fallback_dir: Path | None = None,
    ) -> Tracker:
        """Start (or, given `run_id`, continue) a run in `experiment`."""
        uri = tracking_uri(uri)
        fallback = (fallback_dir / "metrics.jsonl") if fallback_dir else None
        if not server_reachable(uri):
            print(
                f"MLflow at {uri} is unreachable: going on without tracking"
                + (f", metrics kept in {fallback}" if fallback else ""),
                flush=True,
            )
            return cls(None, uri, fallback)
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=uri)
        if run_id is None:
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
            all_tags = {"mlflow.runName": run_name, "git_commit": git_commit(), **(tags or {})}
            run_id = client.create_run(experiment_id, tags=all_tags, run_name=run_name).info.run_id
        else:
            client.update_run(run_id, status="RUNNING")
            for key, value in (tags or {}).items():
                client.set_tag(run_id, key, value)
        return cls(run_id, uri, fallback)

    def _client(self):
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.uri)

    def _guard(self, what: str, call) -> None:
        """Tracking failures mid-run are reported, never raised."""
        try:
            call()
        except Exception as e:  # the server may go away mid-run; the job must not
            log.warning("MLflow %s failed (%s); the job goes on", what, e)

    def log_params(self, params: dict[str, Any]) -> None:
        if self.active:
            from mlflow.entities import Param

            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            self._guard("log_params", lambda: self._client().log_batch(self.run_id, params=items))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.fallback is not None:
            self.fallback.parent.mkdir(parents=True, exist_ok=True)
            with self.fallback.open("a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.active:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
            self._guard("log_metrics", lambda: self._client().log_batch(self.run_id, metrics=items))

    def last_logged_step(self, metric: str) -> int:
        """The highest step `metric` was logged at in this run (-1 if never, or untracked)."""
        if not self.active:
            return -1
        try:
            history = self._client().get_metric_history(self.run_id, metric)
        except Exception as e:  # as with logging: tracking trouble never stops the job
            log.warning("MLflow get_metric_history failed (%s); the job goes on", e)
            return -1
        return max((m.step for m in history), default=-1)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.active:
            for key, value in tags.items():
                self._guard(
                    "set_tag", lambda k=key, v=value: self._client().set_tag(self.run_id, k, v)
                )

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.active:
            self._guard(
                f"log_artifact {path.name}",
                lambda: self._client().log_artifact(self.run_id, str(path), artifact_path),
            )

    def finish(self, status: str = "FINISHED") -> None:
        if self.active:
            self._guard("finish", lambda: self._client().set_terminated(self.run_id, status))


@contextmanager
def tracked_run(experiment: str, run_name: str, **kwargs: Any) -> Iterator[Tracker]:
    """`with tracked_run(...) as tracker:` ends the run FINISHED, or FAILED on an exception."""
    tracker = Tracker.open(experiment, run_name, **kwargs)
    try:
        yield tracker
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()


def run_key_tags(run_key: str) -> dict[str, str]:
    """Tags that mark a run as the one for `run_key` (e.g. storage path + run name): the key
    to read, and its SHA-256, which `find_unfinished_run` searches by. An MLflow filter string
    has no escape for quotes (a value holding both ' and " cannot be written in one), so free
    text such as a storage path never goes into a filter."""
    digest = hashlib.sha256(run_key.encode()).hexdigest()
    return {"genie.run_key": run_key, "genie.run_key_sha256": digest}


def find_unfinished_run(experiment: str, run_key: str, uri: str | None = None) -> str | None:
    """The run of `experiment` tagged with `run_key_tags(run_key)` that has not finished, if
    any: a rerun under the same name continues it instead of starting a second one."""
    uri = tracking_uri(uri)
    if not server_reachable(uri):
        return None
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    digest = run_key_tags(run_key)["genie.run_key_sha256"]
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`genie.run_key_sha256` = '{digest}' and attributes.status != 'FINISHED'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


MODEL_URI_TAG = "genie.model_uri"  # where a training run's exported weights live


def register_model(tracker: Tracker, model_name: str, weights: str, alias: str) -> str | None:
    """Register the run's exported weights (a folder, local or on an object store) as a new
    version of `model_name` with `alias`, by URI: MLflow records where the weights are and
    carries their small `model.json` as the run's `model/` artifact, never the weights."""
    if not tracker.active:
        return None
    from pipelines import storage

    client = tracker._client()
    try:
        client.set_tag(tracker.run_id, MODEL_URI_TAG, weights)
        with tempfile.TemporaryDirectory() as folder:
            info = Path(folder) / "model.json"
            info.write_bytes(storage.read_bytes(storage.join(weights, "model.json")))
            client.log_artifact(tracker.run_id, str(info), "model")
        plain = plain_name("model_name", model_name)  # it goes into a filter string
        if not client.search_registered_models(filter_string=f"name = '{plain}'"):
            client.create_registered_model(model_name)
        version = client.create_model_version(
            model_name, f"runs:/{tracker.run_id}/model", run_id=tracker.run_id,
            tags={"weights_uri": weights},
        )  # fmt: skip
        client.set_registered_model_alias(model_name, alias, version.version)
        return version.version
    except Exception as e:
        log.warning("registering %s failed (%s); the weights stay at %s", model_name, e, weights)
        return None


def run_of(reference: str, uri: str | None = None) -> str:
    """The MLflow run id that `reference` names: `genie-tokenizer@latest-tiny` (registered model
    and alias) or a run id as is."""
    if "@" not in reference:
        return reference
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(uri))
    name, alias = reference.split("@", 1)
    plain_name("registered model", name)
    plain_name("model alias", alias)
    aliases = client.get_registered_model(name).aliases
    if alias not in aliases:
        raise ValueError(f"model {name} has no alias {alias!r} (aliases: {sorted(aliases)})")
    return client.get_model_version(name, aliases[alias]).run_id


def model_uri(reference: str, uri: str | None = None) -> tuple[str, str]:
    """(run id, URI of its weights) for a registry reference or run id: the exported folder
    (local or object store) the run recorded, or, for runs from before, the model.pt it logged
    to MLflow (downloaded)."""
    import mlflow

    uri = tracking_uri(uri)
    run_id = run_of(reference, uri)
    tags = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id).data.tags
    if MODEL_URI_TAG in tags:
        return run_id, tags[MODEL_URI_TAG]
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="checkpoint/model.pt", tracking_uri=uri
    )
    return run_id, local


def model_info(weights: str) -> dict[str, Any]:
    """`models.checkpoint.read_info` of the weights `model_uri` names, without copying them: an
    exported folder (local or on an object store; only its model.json is read) or a model.pt.
    Raises ValueError, naming the weights, where they cannot be read."""
    from models.checkpoint import MODEL_INFO, read_info
    from pipelines import storage

    try:
        if weights.endswith(".pt"):
            return read_info(weights)
        info = storage.read_json(storage.join(weights, MODEL_INFO))
    except (OSError, RuntimeError, pickle.UnpicklingError) as error:  # OSError: no model.json
        raise ValueError(f"cannot read the model at {weights}: {error}") from error
    if not isinstance(info, dict) or not {"stage", "preset"} <= info.keys():
        raise ValueError(f"{storage.join(weights, MODEL_INFO)} does not describe a model")
    return info


def resolve_model(reference: str, uri: str | None = None) -> tuple[str, str]:
    """`genie-tokenizer@latest-tiny` (registered model and alias) or a run id -> (run id, local
    path of its weights, for `models.checkpoint.load_trained`)."""
    from pipelines.storage import local_copy

    run_id, weights = model_uri(reference, uri)
    return run_id, local_copy(weights)


def resolve_world(
    references: dict[str, str | None], preset: str = "tiny", uri: str | None = None
) -> dict[str, tuple[str, str]]:
    """Stage -> (run id, local weights) for models that belong together.

    `references` names some of tokenizer, lam, dynamics (None: not given). With a dynamics
    model, the tokenizer and LAM default to the runs its token shards were made by (recorded
    in its run); one given that is not that run is refused, naming both, and so is a tokenizer
    whose vocabulary or grid is not the dynamics model's. Without a dynamics model, a stage not
    given is `genie-<stage>@latest-<preset>`."""
    import mlflow

    from models.checkpoint import check_pair, read_info

    uri = tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs: dict[str, str] = {}
    recorded: dict[str, str] = {}
    if "dynamics" in references:
        runs["dynamics"] = run_of(references["dynamics"] or f"genie-dynamics@latest-{preset}", uri)
        tags = client.get_run(runs["dynamics"]).data.tags
        recorded = {s: tags.get(f"upstream.{s}_run", "") for s in ("tokenizer", "lam")}
    for stage, reference in references.items():
        if stage == "dynamics":
            continue
        if reference is None:
            runs[stage] = recorded.get(stage) or run_of(f"genie-{stage}@latest-{preset}", uri)
            continue
        runs[stage] = run_of(reference, uri)
        if recorded.get(stage) and runs[stage] != recorded[stage]:
            raise ValueError(
                f"{stage} {reference} (run {runs[stage]}) and dynamics run {runs['dynamics']} do "
                f"not belong together: the dynamics model was trained on tokens of {stage} run "
                f"{recorded[stage]}. Drop --{stage} to load that one"
            )
    resolved = {stage: resolve_model(run, uri) for stage, run in runs.items()}
    if "tokenizer" in resolved and "dynamics" in resolved:
        check_pair(read_info(resolved["tokenizer"][1]), read_info(resolved["dynamics"][1]),
                   (f"run {runs['tokenizer']}", f"run {runs['dynamics']}"))  # fmt: skip
    return resolved
