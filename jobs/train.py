"""Train one stage of the world model (tokenizer, LAM or dynamics) with Ray Train.

Data streams from Ray Data (curated clips, or token shards for dynamics) into a TorchTrainer
with `num_workers` workers (DDP). Checkpoints go under storage_path/name; a run restarted by
Ray Train after a worker dies, or rerun by you under the same name, resumes from the last
checkpoint and continues the same MLflow run. Rank 0 logs to MLflow (experiment genie-<stage>);
the final checkpoint is registered as model genie-<stage> with the alias `latest-<preset>`, and
storage_path/name/result.json records the MLflow run id and final metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from jobs.common.config import ConfigError, load_config, to_dict
from jobs.training.config import PRESETS_DIR, TrainConfig

EPILOG = """\
examples:
  genie train --stage tokenizer data=/data/curated/clips name=tok-tiny steps=300
  genie train --stage lam --preset demo data=/data/curated/clips name=lam-tiny num_workers=2
  genie train --stage dynamics data=/data/tokens name=dyn-tiny tokenizer_run=<id> lam_run=<id>
  ray job submit --working-dir . -- python -m jobs.train --stage tokenizer data=... name=...

Any field of the config can be set as key=value (nested: optim.lr=3e-4); presets live in
jobs/configs/train/. Every field is checked before the cluster is touched.
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stage", required=True, choices=["tokenizer", "lam", "dynamics"])
    parser.add_argument(
        "--preset", default=None, help="YAML preset name in jobs/configs/train/ or a path"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    from jobs.common.tracking import tracking_uri

    overrides = [f"stage={args.stage}", *args.overrides]
    config = load_config(TrainConfig, args.preset, overrides, PRESETS_DIR)
    # Workers neither share the driver's environment nor its working directory.
    resolved = [] if config.mlflow_uri else [f"mlflow_uri={tracking_uri()}"]
    for key in ("data", "storage_path"):
        value = getattr(config, key)
        if "://" not in value and not Path(value).is_absolute():
            resolved.append(f"{key}={Path(value).resolve()}")
    if resolved:
        config = load_config(TrainConfig, args.preset, [*overrides, *resolved], PRESETS_DIR)
    return config


def run(config: TrainConfig) -> dict:
    """Fit the stage; returns the final metrics and the MLflow run id."""
    import ray
    import ray.train
    from ray.data import ExecutionOptions
    from ray.train.torch import TorchTrainer

    from jobs.common.tracking import Tracker, find_unfinished_run, register_checkpoint
    from jobs.training.loop import STATE_FILE, train_loop_per_worker
    from jobs.training.stages import STAGES
    from models.checkpoint import build_model, save_trained

    stage = STAGES[config.stage]
    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    run_key = f"{config.storage_path.rstrip('/')}/{config.name}"
    run_id = find_unfinished_run(stage.experiment, run_key, config.mlflow_uri)
    tracker = Tracker.open(
        stage.experiment, config.name, uri=config.mlflow_uri, run_id=run_id,
        tags={**stage.tags(config), "genie.run_key": run_key},
    )  # fmt: skip
    if run_id:
        print(f"continuing MLflow run {run_id} (same name, unfinished)", flush=True)
    values = {**to_dict(config), "mlflow_run_id": tracker.run_id}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=values,
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=config.use_gpu,
            placement_strategy=config.placement,
        ),
        run_config=ray.train.RunConfig(
            name=config.name,
            storage_path=config.storage_path,
            failure_config=ray.train.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
        datasets={"train": stage.dataset(config, config.num_workers)},
        # Same order on every run, so a resumed run sees the data the killed one would have.
        dataset_config=ray.train.DataConfig(
            execution_options=ExecutionOptions(preserve_order=True)
        ),
    )
    result = trainer.fit()
    with tempfile.TemporaryDirectory() as directory:
        config_file = Path(directory) / "config.yaml"
        config_file.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        tracker.log_artifact(config_file, "config")
        if result.checkpoint is not None:
            with result.checkpoint.as_directory() as checkpoint_dir:
                state = torch.load(
                    Path(checkpoint_dir) / STATE_FILE, weights_only=True, map_location="cpu"
                )
                model = build_model(config.stage, config.model)
                model.load_state_dict(state["model"])
                weights = save_trained(model, config.stage, config.model, state["step"],
                                       Path(directory) / "model.pt")  # fmt: skip
                tracker.log_artifact(weights, "checkpoint")
    version = register_checkpoint(
        tracker, stage.registered_model, "checkpoint", f"latest-{config.model}"
    )
    tracker.finish()
    metrics = dict(result.metrics or {})
    if "://" not in config.storage_path:  # the receipt a pipeline (the demo) chains on
        receipt = {"run_id": tracker.run_id, "stage": stage.name, "metrics": metrics}
        (Path(config.storage_path) / config.name / "result.json").write_text(
            json.dumps(receipt, indent=2)
        )
    print(f"\n{stage.name}: finished at step {metrics.get('step')}; checkpoint {result.checkpoint}")
    if tracker.active:
        print(
            f"MLflow run {tracker.run_id} ({config.mlflow_uri}); model {stage.registered_model} v{version}"
        )
    return {"metrics": metrics, "run_id": tracker.run_id, "checkpoint": result.checkpoint}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        config = resolve_config(args)
    except ConfigError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if not Path(config.data).exists() and "://" not in config.data:
        parser.exit(2, f"{parser.prog}: error: config field 'data': {config.data} does not exist\n")
    try:
        run(config)
    except ConfigError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
