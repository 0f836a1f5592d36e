"""Train one stage of the world model (tokenizer, LAM or dynamics) with Ray Train.

Data streams from Ray Data (curated clips, or token shards for dynamics) into a TorchTrainer
with `num_workers` workers (DDP, or FSDP2 with strategy=fsdp). Checkpoints go under
storage_path/name, each rank writing its own shards; a run restarted by Ray Train after a
worker dies, or rerun by you under the same name, resumes from the last checkpoint (on any
number of workers) and continues the same MLflow run. Rank 0 logs to MLflow (experiment
genie-<stage>). The final weights go to storage_path/name/model/ (written shard by shard, never
through MLflow) and are registered by that URI as model genie-<stage> with the alias
`latest-<preset>`; storage_path/name/result.json records the MLflow run id and final metrics.
Paths are local or object-store URIs (s3://...).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from jobs.common.config import ConfigError, _read_preset, load_config, to_dict
from jobs.common.parsers import command_parser
from jobs.training.config import PRESETS_DIR, TrainConfig
from pipelines import storage

EPILOG = """\
examples:
  genie train --stage tokenizer data=/data/curated/clips name=tok-tiny steps=300
  genie train --stage lam --preset demo-lam data=/data/curated/clips name=lam-tiny num_workers=2
  genie train --stage dynamics data=/data/tokens name=dyn-tiny tokenizer_run=<id> lam_run=<id>
  ray job submit --working-dir . -- python -m jobs.train --stage tokenizer data=... name=...

Any field of the config can be set as key=value (nested: optim.lr=3e-4); presets live in
jobs/configs/train/. Every field is checked before the cluster is touched.
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    parser.add_argument(
        "--stage", choices=["tokenizer", "lam", "dynamics"],
        help="the stage to train (default: the preset's `stage:`; --stage, the preset and a "
             "stage= override must agree)",
    )  # fmt: skip
    parser.add_argument(
        "--preset", default=None, help="YAML preset name in jobs/configs/train/ or a path"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser


def stage_of(args: argparse.Namespace) -> str:
    """The stage to train, from whichever of `--stage`, a `stage=` override and the preset's
    `stage:` are given. They must all agree: a ConfigError naming the field `stage` otherwise,
    or when none is given."""
    given = [(f"--stage {args.stage}", args.stage)] if args.stage else []
    for item in args.overrides:
        key, sep, raw = item.partition("=")
        if sep and key.strip() == "stage":
            value = yaml.safe_load(raw) if raw.strip() else ""
            given.append((f"the override stage={raw.strip()}", value))
    preset_stage = _read_preset(args.preset, PRESETS_DIR).get("stage") if args.preset else None
    if preset_stage is not None:
        given.append((f"the preset {args.preset!r}, which has stage: {preset_stage}", preset_stage))
    if not given:
        raise ConfigError(
            "config field 'stage' must be set: give --stage, or a preset that names its stage"
        )
    for said, value in given[1:]:
        if value != given[0][1]:
            raise ConfigError(
                f"config field 'stage': {given[0][0]} disagrees with {said}: give one stage "
                "(pick the preset of that stage, or drop --stage / stage=)"
            )
    return given[0][1]


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    from jobs.common.tracking import tracking_uri

    overrides = [f"stage={stage_of(args)}", *args.overrides]
    config = load_config(TrainConfig, args.preset, overrides, PRESETS_DIR)
    # Workers neither share the driver's environment nor its working directory.
    resolved = [] if config.mlflow_uri else [f"mlflow_uri={tracking_uri()}"]
    for key in ("data", "storage_path"):
        try:
            value = storage.resolve(getattr(config, key), f"config field '{key}'")
        except storage.StoragePathError as error:
            raise ConfigError(str(error)) from None
        if value != getattr(config, key):
            resolved.append(f"{key}={value}")
    if resolved:
        config = load_config(TrainConfig, args.preset, [*overrides, *resolved], PRESETS_DIR)
    if not storage.exists(config.data):
        raise ConfigError(f"config field 'data': {config.data} does not exist")
    if config.stage == "dynamics":
        config = with_lineage(config)
    return config


def with_lineage(config: TrainConfig) -> TrainConfig:
    """The dynamics config with the tokenizer and LAM runs its token shards were made by
    (`genie tokenize` records them in every row), checked against any given."""
    import dataclasses

    import pyarrow.dataset as pads
    import pyarrow.fs as pafs

    fs, path = storage.filesystem(config.data)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        dataset = pads.dataset(path, filesystem=fs, format="parquet")
    else:
        dataset = pads.dataset([path], filesystem=fs, format="parquet")
    columns = [c for c in ("tokenizer_run_id", "lam_run_id") if c in dataset.schema.names]
    if len(columns) < 2:
        return config
    pairs = set(zip(*dataset.to_table(columns=columns).to_pydict().values(), strict=True))
    if len(pairs) != 1:
        raise ConfigError(
            f"config field 'data': {config.data} mixes token shards of {len(pairs)} tokenizer/LAM "
            f"pairs {sorted(pairs)}: tokenize with one pair into a fresh --out"
        )
    ((tokenizer_run, lam_run),) = pairs
    for field, given, recorded in (("tokenizer_run", config.tokenizer_run, tokenizer_run),
                                   ("lam_run", config.lam_run, lam_run)):  # fmt: skip
        if given and recorded and given != recorded:
            raise ConfigError(
                f"config field '{field}' is {given!r}, but the token shards in {config.data} were "
                f"made by {field.removesuffix('_run')} run {recorded!r}: the two do not belong "
                "together"
            )
    return dataclasses.replace(
        config,
        tokenizer_run=config.tokenizer_run or tokenizer_run or "",
        lam_run=config.lam_run or lam_run or "",
    )


def run(config: TrainConfig) -> dict:
    """Fit the stage; returns the final metrics and the MLflow run id."""
    import ray
    import ray.train
    from ray.data import ExecutionOptions
    from ray.train.torch import TorchTrainer

    from jobs.common.tracking import (
        Tracker,
        find_unfinished_run,
        register_model,
        run_key_tags,
    )
    from jobs.training.loop import train_loop_per_worker
    from jobs.training.stages import STAGES

    stage = STAGES[config.stage]
    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    run_key = storage.join(config.storage_path, config.name)
    run_id = find_unfinished_run(stage.experiment, run_key, config.mlflow_uri)
    tracker = Tracker.open(
        stage.experiment, config.name, uri=config.mlflow_uri, run_id=run_id,
        tags={**stage.tags(config), **run_key_tags(run_key)},
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
    weights = storage.join(run_key, "model")
    with tempfile.TemporaryDirectory() as directory:
        config_file = Path(directory) / "config.yaml"
        config_file.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        tracker.log_artifact(config_file, "config")
    version = register_model(tracker, stage.registered_model, weights, f"latest-{config.model}")
    tracker.finish()
    metrics = dict(result.metrics or {})
    receipt = {"run_id": tracker.run_id, "stage": stage.name, "metrics": metrics,
               "model": weights}  # fmt: skip
    storage.write_json(storage.join(run_key, "result.json"), receipt)  # what a pipeline chains on
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
    try:
        run(config)
    except ConfigError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
