"""Curate raw gameplay video into 16 s clips at 10 FPS, 160x90, with scores, rejects and a funnel.

`score` decodes every source once on Ray Data, splits it into shots at hard cuts, stores
every clip (cut within shots) with all of its scores, then finds the pairs of near copies
across everything scored (also on Ray Data); `select` applies thresholds to the stored scores
and pairs in seconds, without decoding; `run` does both. Every entry of the source listing ends
accepted, rejected (with a reason), errored (with the error) or skipped (not a video, hidden, a
FIFO, a symlink loop, ...: with the reason): summary.json says so, with the funnel per filter,
the footage lost to cuts, throughput, config and code version. Each command is an
MLflow run in experiment genie-curate, tagged with the dataset version (a hash of what the
output holds). A killed `score` or `run` resumes when rerun with the same --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from jobs.common.config import ConfigError, load_config
from jobs.common.parsers import command_parser
from jobs.curation.config import PRESETS_DIR, CurateConfig, threshold_overrides
from pipelines.curation.filters import describe_filters

EXPERIMENT = "genie-curate"

EPILOG = f"""\
examples:
  genie curate run --source data/raw --out data/curated
  genie curate score --source 's3://bucket/raw/**/*.mp4' --out s3://bucket/curated wave_sources=2048
  genie curate select --out data/curated --where "motion > 0.02 and blur > 80 and duplicate >= 16"
  genie curate select --out data/curated --thresholds my-thresholds.yaml
  genie curate fit-quality --scored data/curated --labels labels.csv --model quality.json
  genie curate select --out data/curated quality_model=quality.json thresholds.quality=0.7
  ray job submit --working-dir . -- python -m jobs.curate run --source /data/raw --out /data/cur

filters, in the order they are applied (the first that fails is the reject reason):
{describe_filters()}

Sources are split into shots at hard cuts (decode.cut_threshold) and clips are cut within
shots, so no clip holds a cut; summary.json says how much footage the cuts cost. A folder's
entries that are not videos to decode (other suffixes, hidden names, FIFOs, symlinks to
folders or out of the folder, names that are not UTF-8) are listed as skipped, with the reason.

Any config field can be set as key=value (decode.clip_frames=80, thresholds.blur=30); the
defaults are written out in jobs/configs/curate/default.yaml. Every field is checked before
any work starts.
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "score": "decode every source once and store each clip with all scores",
        "select": "apply thresholds to stored scores (no decoding) and publish clips",
        "run": "score, then select",
    }
    for name, text in helps.items():
        command = commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name != "select":
            command.add_argument("--source", help="directory, glob, or manifest (.parquet/.csv)")
        command.add_argument("--out", help="output root (local path or object-store URI)")
        command.add_argument("--preset", help="YAML preset name in jobs/configs/curate/ or a path")
        if name != "score":
            command.add_argument("--where", help='e.g. "motion > 0.02 and blur > 80"')
            command.add_argument("--thresholds", help="YAML mapping of filter: threshold")
        command.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    fit = commands.add_parser(
        "fit-quality",
        help="train the learned quality model from labelled clip ids",
        description="Train the logistic quality model on a scored dataset's stored features.",
    )
    fit.add_argument("--scored", required=True, help="an output root that `score` wrote")
    fit.add_argument("--labels", required=True, help="CSV with columns clip_id,label (good/bad)")
    fit.add_argument("--model", required=True, help="where to write the model (JSON)")
    fit.add_argument("--mlflow-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    return parser


def resolve_config(args: argparse.Namespace) -> CurateConfig:
    """The config from preset + overrides + flags, fully checked (raises ConfigError)."""
    overrides = list(args.overrides)
    if getattr(args, "thresholds", None):
        overrides = threshold_overrides(args.thresholds) + overrides
    config = load_config(CurateConfig, args.preset, overrides, PRESETS_DIR)
    flags = {
        key: value
        for key in ("source", "out", "where")
        if (value := getattr(args, key, None)) is not None
    }
    try:
        config = dataclasses.replace(config, **flags)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    config.require_paths(args.command)
    from pipelines.curation.sources import check_source
    from pipelines.curation.store import check_out, check_spec

    try:
        check_out(config.out)
        if args.command in ("score", "run"):
            check_source(config.source)
            check_spec(config.out, config.decode)
    except (OSError, ValueError) as error:
        raise ConfigError(str(error)) from None
    return config


def code_version() -> dict[str, str]:
    from jobs.common.tracking import git_commit

    return {"git_commit": git_commit(), "package": metadata.version("genie-platform")}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command == "fit-quality":
        return fit_quality(args)
    try:
        config = resolve_config(args)
    except ConfigError as error:
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        return 2
    from jobs.common.tracking import tracked_run

    run_name = config.run_name or f"{args.command}-{Path(config.out.rstrip('/')).name}"
    local_out = None if "://" in config.out else Path(config.out)
    tags = {"genie.stage": "curate", "command": args.command, "out": config.out}
    if config.source:
        tags["source"] = config.source
    with tracked_run(
        EXPERIMENT, run_name, uri=config.mlflow_uri or None, tags=tags, fallback_dir=local_out
    ) as tracker:
        tracker.log_params({"command": args.command, **config.flat_params()})
        score_report = None
        if args.command in ("score", "run"):
            score_report = run_score(config)
            near_copies = score_report.get("near_copies") or {}
            figures = {**score_report, **{f"near_copies.{k}": v for k, v in near_copies.items()}}
            tracker.log_metrics(
                {f"score.{k}": v for k, v in figures.items() if isinstance(v, int | float)},
                step=0,
            )
        if args.command in ("select", "run"):
            summary = run_select(config, args.command, tracker)
            print(json.dumps({k: summary[k] for k in ("sources", "dataset_version")}, indent=2))
    return 0


def run_score(config: CurateConfig) -> dict[str, Any]:
    import ray

    from pipelines.curation.scoring import score
    from pipelines.curation.store import write_output

    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    report = score(
        config.source, config.out, config.decode, config.wave_sources, config.shard_rows
    ).as_dict()
    write_output(config.out, "score.json", report)
    print(f"[score] {json.dumps(report)}", flush=True)
    return report


def run_select(config: CurateConfig, command: str, tracker: Any) -> dict[str, Any]:
    """Select, then write summary.json, manifest.json and the report pictures, and log them."""
    from jobs.curation.report import render_report
    from pipelines.curation.filters.quality import load_model
    from pipelines.curation.selection import Selector
    from pipelines.curation.store import read_output, write_output

    selection = config.selection()
    model = load_model(config.quality_model) if config.quality_model else None
    started = time.monotonic()
    result = Selector(config.out, selection, model, config.select_threads).run()
    select_s = time.monotonic() - started
    summary = {
        "command": command,
        "source": config.source,
        "out": config.out,
        "dataset_version": result["dataset_version"],
        "sources": result["sources"],
        "conservation": _conservation(result["sources"]),
        "clips": result["clips"],
        "footage": result["footage"],
        "selection": result["selection"],
        "throughput": {
            "score": read_output(config.out, "score.json"),
            "select_s": round(select_s, 3),
        },
        "config": dataclasses.asdict(config),
        "code_version": code_version(),
        "mlflow_run_id": tracker.run_id,
    }
    pictures = render_report(summary, result["scores"], result["samples"], selection)
    write_output(config.out, "manifest.json", result["manifest"])
    for name, data in pictures.items():
        write_output(config.out, f"report/{name}", data)
    write_output(config.out, "summary.json", summary)  # last: marks a complete select
    _log_select(tracker, summary, result["manifest"], pictures)
    return summary


def _conservation(sources: dict[str, Any]) -> str:
    ok = "holds" if sources["conserved"] else "DOES NOT HOLD"
    return (
        f"{sources['inputs']} inputs = {sources['accepted']} accepted + {sources['rejected']} "
        f"rejected + {sources['errored']} errored + {sources['skipped']} skipped ({ok})"
    )


def _log_select(tracker: Any, summary: dict, manifest: dict, pictures: dict[str, bytes]) -> None:
    sources, clips = summary["sources"], summary["clips"]
    metrics = {
        "sources.inputs": sources["inputs"],
        "sources.accepted": sources["accepted"],
        "sources.rejected": sources["rejected"],
        "sources.errored": sources["errored"],
        "sources.skipped": sources["skipped"],
        "clips.scored": clips["scored"],
        "clips.kept": clips["kept"],
        "clips.keep_rate": clips["kept"] / max(1, clips["scored"]),
        "select_s": summary["throughput"]["select_s"],
        "footage.lost_to_cuts_s": summary["footage"]["lost_to_cuts_s"],
        "footage.in_kept_clips_s": summary["footage"]["in_kept_clips_s"],
    }
    metrics.update({f"funnel.{s['filter']}.rejected": s["rejected"] for s in clips["funnel"]})
    tracker.log_metrics(metrics, step=0)
    tracker.set_tags({"dataset_version": summary["dataset_version"]})
    with tempfile.TemporaryDirectory() as folder:
        for name, data in (
            ("summary.json", json.dumps(summary, indent=2, default=str).encode()),
            ("manifest.json", json.dumps(manifest, indent=2).encode()),
        ):
            (Path(folder) / name).write_bytes(data)
            tracker.log_artifact(Path(folder) / name)
        for name, data in pictures.items():
            (Path(folder) / name).write_bytes(data)
            tracker.log_artifact(Path(folder) / name, "report")


def fit_quality(args: argparse.Namespace) -> int:
    from jobs.common.tracking import tracked_run
    from pipelines.curation.filters.quality import fit_from_scored, save_model
    from pipelines.curation.store import SCORED

    try:
        model = fit_from_scored(f"{args.scored.rstrip('/')}/{SCORED}", args.labels)
    except (OSError, ValueError) as error:
        print(f"fit-quality: error: {error}", file=sys.stderr)
        return 2
    path = save_model(model, args.model)
    print(f"quality model -> {path}: {json.dumps(model.trained_on)}")
    with tracked_run(EXPERIMENT, f"fit-quality-{Path(args.model).stem}", uri=args.mlflow_uri,
                     tags={"genie.stage": "curate", "command": "fit-quality"}) as tracker:  # fmt: skip
        tracker.log_params({"scored": args.scored, "labels": args.labels, "kind": model.kind})
        tracker.log_metrics({k: float(v) for k, v in model.trained_on.items()}, step=0)
        tracker.log_artifact(path, "model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
