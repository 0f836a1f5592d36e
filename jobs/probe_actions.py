"""How much of the game's true actions your footage shows: a reference for the LAM's NMI.

Trains the LAM's encoder (the --model preset's LAM) WITH the true actions from the action logs,
on the training clips, then scores it on the held-out windows `genie eval` scores the LAM on,
with the same NMI and accuracy. The LAM learns from the frames alone, so read `genie eval`'s
lam_nmi against this run's probe_nmi:
  probe_nmi high, lam_nmi low     the frames show the actions; the LAM does not find them
  both low                        the frames hardly show the actions (momentum, a player who
                                  is often blocked, actions that do nothing on screen)
  lam_nmi near camera_motion_nmi  the LAM may read little more than which way the picture
                                  moved (both jobs report it: the frames' dominant motion read
                                  nine ways, scored alike)

Metrics (MLflow experiment genie-eval, run name --name; also printed, and in --out/probe.json):
  probe_nmi, probe_accuracy, probe_chance_accuracy   on the held-out transitions
  camera_motion_nmi                                   the frames' dominant motion, scored alike
  probe_heldout_windows                               held-out windows scored
  probe_train_clips, probe_clips_without_actions, probe_clips_too_short
                                                     what it trained on, and what it left out
Training clips whose source video has no action log (in --actions, or beside the video), or
that are shorter than --window, are left out and counted. The job refuses to start when no
training clip is usable, or when a held-out window has no true actions.
The probe is a supervised reference, not a strict bound: the LAM may use another number of
codes (NMI depends on it) and sees a whole window's past, the probe --window frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from jobs.common.parsers import add_scored_clips, command_parser, resolve_scored_clips

EPILOG = """\
examples:
  genie probe-actions --clips data/curated/clips --actions data/raw/manifest.parquet
  genie probe-actions --clips data/curated/clips --window 3 --steps 2000 --out data/eval
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    add_scored_clips(parser)
    parser.add_argument(
        "--model", default="small", help="model preset whose LAM encoder is trained (default small)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=2,
        help="frames the probe sees for a transition, the transition's two last (default 2, "
        "as the demos' LAM; 3 or more let it read a change of speed)",
    )
    parser.add_argument("--steps", type=int, default=1200, help="training steps (default 1200)")
    parser.add_argument("--batch-size", type=int, default=16, help="windows a step (default 16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    parser.add_argument(
        "--max-clips",
        type=int,
        default=256,
        help="training clips held in memory at most, spread over the dataset (default 256)",
    )
    parser.add_argument(
        "--samples", type=int, default=64, help="held-out windows scored (default 64, as eval)"
    )
    parser.add_argument(
        "--frames", type=int, default=16, help="frames a held-out window (default 16, as eval)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="action-probe", help="MLflow run name")
    parser.add_argument("--out", default=None, help="also write probe.json here (a folder)")
    parser.add_argument("--mlflow-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    for flag in ("steps", "batch_size", "lr", "max_clips", "samples"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag.replace('_', '-')} must be > 0, got {getattr(args, flag)}")
    if args.window < 2:
        parser.error(f"--window must be >= 2 (a transition has two frames), got {args.window}")
    if args.frames < 2:
        parser.error(f"--frames must be >= 2, got {args.frames}")
    from jobs.common.config import ConfigError, plain_name
    from models.configs import get_preset
    from pipelines import storage

    try:
        plain_name("--name", args.name)
    except ConfigError as error:
        parser.error(str(error))
    try:
        config = get_preset(args.model).lam
    except ValueError as error:
        parser.error(f"--model: {error}")
    resolve_scored_clips(parser, args)

    import pyarrow.dataset as pads

    from jobs.common.tracking import Tracker, tracking_uri
    from jobs.evaluation.actions import ActionLogError, labelled_windows, lam_alignment
    from jobs.evaluation.probe import LabelledClips, train_probe
    from pipelines.curation.sources import manifest_column

    names = pads.dataset(args.clips, format="parquet").schema.names
    if not {"source_uri", "start_s"} <= set(names):
        parser.error(
            f"--clips {args.clips} do not record their source video and start time (columns "
            "source_uri, start_s, as `genie curate` writes them): no true actions can be found"
        )
    logs = manifest_column(args.actions, "actions_uri") if args.actions else {}
    start = time.perf_counter()
    try:
        heldout = labelled_windows(args.clips, args.samples, args.frames, logs)
    except ValueError as error:  # no held-out clip as long as --frames
        parser.error(f"--frames {args.frames}: {error}")
    if heldout.truth is None:  # scored only once training is done: checked first
        parser.error(
            f"held-out windows cannot be scored: {heldout.skipped} (--clips {args.clips}; "
            "--actions names the logs)"
        )
    try:
        data = LabelledClips.read(args.clips, logs, args.max_clips, args.window)
    except ActionLogError as error:  # a training clip's action log breaks the format
        parser.error(str(error))
    print(
        f"training clips with true actions: {len(data.clips)} (left out: "
        f"{data.without_actions} no action log covers, {data.too_short} shorter than --window)",
        flush=True,
    )
    if not data.clips:
        parser.error(
            f"no training clip of {args.clips} has true actions over {args.window} frames: "
            "give the source manifest with --actions, or put <stem>.actions.parquet beside "
            "each source video"
        )
    probe = train_probe(config, data, args.window, args.steps, args.batch_size, args.lr, args.seed)
    scores, _ = lam_alignment(probe, heldout)
    results = {
        "probe_nmi": scores["lam_nmi"],
        "probe_accuracy": scores["lam_accuracy"],
        "probe_chance_accuracy": scores["lam_chance_accuracy"],
        "camera_motion_nmi": scores["camera_motion_nmi"],
        "probe_train_clips": float(len(data.clips)),
        "probe_clips_without_actions": float(data.without_actions),
        "probe_clips_too_short": float(data.too_short),
        "probe_heldout_windows": scores["lam_windows"],
    }
    for name, value in results.items():
        print(f"  {name:28s} {value:10.4f}")
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)

    uri = tracking_uri(args.mlflow_uri)
    tracker = Tracker.open("genie-eval", args.name, uri=uri, tags={"clips": str(args.clips)})
    params = {"model": args.model, "window": args.window, "steps": args.steps}
    params |= {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    params |= {"samples": args.samples, "frames": args.frames, "max_clips": args.max_clips}
    tracker.log_params(params)
    tracker.log_metrics(results, step=0)
    tracker.finish()
    if args.out:
        report = json.dumps(results | {"params": params}, indent=2)
        storage.write_bytes(storage.join(args.out, "probe.json"), report.encode())
        print(f"wrote {storage.join(args.out, 'probe.json')}")
    if tracker.active:
        print(f"MLflow run {tracker.run_id} in experiment genie-eval ({uri})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
