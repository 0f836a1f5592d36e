"""The one MLflow helper every job logs through.

A job must never die because the tracking server is down: `Tracker.open` checks the server
first, and when it cannot be reached the job goes on, says so once, and keeps its metrics in
`metrics.jsonl` beside its outputs so nothing is lost.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def find_unfinished_run(experiment: str, run_key: str, uri: str | None = None) -> str | None:
    """The run of `experiment` tagged `genie.run_key=run_key` that has not finished, if any:
    a rerun under the same name continues it instead of starting a second one."""
    uri = tracking_uri(uri)
    if not server_reachable(uri):
        return None
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`genie.run_key` = '{run_key}' and attributes.status != 'FINISHED'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def register_checkpoint(
    tracker: Tracker, model_name: str, artifact_path: str, alias: str
) -> str | None:
    """Register the run's logged checkpoint folder as a new version of `model_name` with `alias`.

    The checkpoint is a plain state_dict (loaded with weights_only=True), not a pickled module."""
    if not tracker.active:
        return None
    client = tracker._client()
    try:
        if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
            client.create_registered_model(model_name)
        version = client.create_model_version(
            model_name, f"runs:/{tracker.run_id}/{artifact_path}", run_id=tracker.run_id
        )
        client.set_registered_model_alias(model_name, alias, version.version)
        return version.version
    except Exception as e:
        log.warning(
            "registering %s failed (%s); the checkpoint stays in the run's artifacts", model_name, e
        )
        return None


def resolve_model(reference: str, uri: str | None = None) -> tuple[str, str]:
    """`genie-tokenizer@latest-tiny` (registered model and alias) or a run id -> (run id, local
    path of the run's checkpoint/model.pt)."""
    import mlflow

    uri = tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id = reference
    if "@" in reference:
        name, alias = reference.split("@", 1)
        aliases = client.get_registered_model(name).aliases
        if alias not in aliases:
            raise ValueError(f"model {name} has no alias {alias!r} (aliases: {sorted(aliases)})")
        run_id = client.get_model_version(name, aliases[alias]).run_id
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="checkpoint/model.pt", tracking_uri=uri
    )
    return run_id, local
