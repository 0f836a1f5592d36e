"""Evaluate a trained world model on held-out curated clips (or every clip of a corpus no stage
trained on, --every-clip) and log it all to MLflow (genie-eval).

Metrics (stable names, so the MLflow UI compares runs directly):
  tokenizer_psnr, tokenizer_ssim       reconstructions of the held-out windows
  lam_nmi, lam_accuracy, lam_chance_accuracy, lam_codes_used
                                       LAM codes vs the true actions, where an action log sits
                                       beside each source video (`genie synth`, `genie record`);
                                       otherwise the run's tag `lam_nmi_skipped` says why
  camera_motion_nmi                    a reference: the same NMI for the frames' dominant
                                       motion read nine ways (left/still/right x up/still/down)
                                       in place of the codes; a LAM near it may read little
                                       more than which way the picture moved
  delta_psnr_t4, psnr_inferred_t4, psnr_random_t4
                                       the paper's ΔtPSNR: frame t generated with the actions
                                       the LAM infers from the truth vs with random actions
  generation_psnr, generation_ssim     generated (inferred actions) vs true frames, all t
  generation_psnr_still                the floor generation_psnr has to beat: the prompt frame,
                                       through the tokenizer, held still for every t
  fvd                                  Kinetics-400 I3D features of true vs generated windows
  motion_true_action<k>_dx/_dy, motion_generated_action<k>_dx/_dy, motion_agreement
                                       camera motion (pixels a frame, what changed moved by how
                                       much) of the true frames the LAM labels k and of
                                       rollouts holding k;
                                       the share of moving actions whose rollouts move their way
Artifacts: comparison video (truth | reconstruction | inferred-action and random-action
generations, mp4 and gif), ΔtPSNR-vs-t plot, one rollout per action from one prompt, the
camera motion per action (true vs generated) as a chart, and `action_map.json` (each true
action's name and the latent code it most often gets: `genie play --action-map` takes it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from jobs.common.config import ConfigError, plain_name
from jobs.common.parsers import add_scored_clips, command_parser, resolve_scored_clips

EPILOG = """\
examples:
  genie eval --clips data/curated/clips        # models: genie-*@latest-tiny from the registry
  genie eval --clips data/curated/clips --tokenizer <run id> --lam <run id> --dynamics <run id>
  genie eval --clips other/curated/clips --actions other/raw/manifest.parquet --every-clip
                                               # a corpus no stage trained on, every clip of it
  ray job submit --working-dir . -- python -m jobs.evaluate --clips /shared/curated/clips
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    add_scored_clips(parser)
    for stage in ("tokenizer", "lam", "dynamics"):
        parser.add_argument(
            f"--{stage}",
            default=None,
            help="registered model@alias or MLflow run id (default: for the tokenizer and LAM, "
            "the runs the dynamics model was trained on; for dynamics genie-dynamics@latest-tiny)",
        )
    parser.add_argument("--samples", type=int, default=8, help="held-out windows (default 8)")
    parser.add_argument(
        "--every-clip",
        action="store_true",
        help="score windows of every kept clip of --clips, not only the held-out ones: for a "
        "corpus no stage trained on (say, recorded with another seed)",
    )
    parser.add_argument(
        "--action-samples",
        type=int,
        default=64,
        help="held-out windows the LAM's codes are compared with the true actions on; LAM "
        "inference is cheap, and a handful of windows gives a noisy NMI (default 64)",
    )
    parser.add_argument(
        "--frames", type=int, default=16, help="frames a window (default 16; FVD needs >= 9)"
    )
    parser.add_argument(
        "--maskgit-steps", type=int, default=25, help="MaskGIT steps a frame (default 25)"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="MaskGIT sampling temperature (default 1.0); lower samples the likelier tokens",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="eval", help="MLflow run name (default: eval)")
    parser.add_argument(
        "--out", default=None, help="also keep the artifacts here (a folder or an s3:// URI)"
    )
    parser.add_argument("--mlflow-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.frames < 4:
        parser.error(f"--frames must be >= 4 (ΔtPSNR is taken at t = 4), got {args.frames}")
    if args.samples < 2:
        parser.error(f"--samples must be >= 2 (FVD needs two videos a set), got {args.samples}")
    if args.action_samples < 1:
        parser.error(f"--action-samples must be >= 1, got {args.action_samples}")
    if not 0 < args.temperature <= 100:
        parser.error(f"--temperature must be in (0, 100], got {args.temperature}")
    try:
        plain_name("--name", args.name)
    except ConfigError as error:
        parser.error(str(error))
    from models.i3d import WEIGHTS_ENV, weights_path
    from pipelines import storage

    resolve_scored_clips(parser, args)
    if args.frames >= 9 and not weights_path().is_file():  # FVD is never dropped silently
        parser.error(
            f"FVD needs the I3D weights, not found at {weights_path()} (${WEIGHTS_ENV}): run "
            f"`genie fetch-i3d`, or on a cluster point ${WEIGHTS_ENV} at a copy the job's node "
            "sees (`genie submit` passes this machine's path)"
        )

    import torch

    from jobs.common.tracking import Tracker, resolve_world, tracking_uri
    from jobs.evaluation.actions import labelled_windows, lam_alignment, motion_by_action
    from jobs.evaluation.artifacts import plot_delta_psnr, plot_motion, side_by_side, write_clip
    from models import metrics
    from models.checkpoint import load_trained
    from models.world import WorldModel
    from pipelines.curation.sources import manifest_column
    from pipelines.images import frame_grid, save_png, to_model, to_uint8
    from pipelines.training_data import heldout_windows

    logs = manifest_column(args.actions, "actions_uri") if args.actions else {}
    torch.manual_seed(args.seed)
    uri = tracking_uri(args.mlflow_uri)
    runs, models, runs_of = {}, {}, ("tokenizer", "lam", "dynamics")
    try:  # a set of models that belongs together (lineage, vocabulary, grid), or an error
        world_runs = resolve_world({s: getattr(args, s) for s in runs_of}, uri=uri)
    except ValueError as error:
        parser.error(str(error))
    for stage, (run, path) in world_runs.items():
        runs[stage], models[stage] = run, load_trained(path)
    world = WorldModel(
        models["tokenizer"],
        models["dynamics"],
        maskgit_steps=args.maskgit_steps,
        temperature=args.temperature,
    )
    lam = models["lam"]

    try:
        windows = heldout_windows(args.clips, args.frames, args.samples, args.every_clip)
    except ValueError as error:  # no held-out clip as long as --frames
        parser.error(f"--frames {args.frames}: {error}")
    truth = to_model(np.stack([w["frames"] for w in windows]))  # (B, T, C, H, W)
    scored = "every clip" if args.every_clip else "the held-out clips"
    print(f"evaluating on {len(windows)} windows of {args.frames} frames of {scored}", flush=True)

    results: dict[str, float] = {}
    with torch.no_grad():
        true_tokens = world.tokenizer.encode(truth)
        reconstruction = world.tokenizer.decode(true_tokens)
        results["tokenizer_psnr"] = float(metrics.psnr(reconstruction, truth).mean())
        results["tokenizer_ssim"] = float(metrics.ssim(reconstruction, truth).mean())

        inferred = lam.infer_actions(truth)  # (B, T-1)
        labelled = labelled_windows(
            args.clips, max(args.action_samples, len(windows)), args.frames, logs, args.every_clip
        )
        alignment, details = lam_alignment(lam, labelled)
        results |= alignment
        if "skipped" in details:
            print(f"LAM vs true actions skipped: {details['skipped']}", flush=True)

        print("generating with inferred and with random actions ...", flush=True)
        generator = torch.Generator().manual_seed(args.seed)
        random_actions = torch.randint(0, world.num_actions, inferred.shape, generator=generator)
        with_inferred = world.rollout(truth[:, 0], inferred, seed=args.seed)
        with_random = world.rollout(truth[:, 0], random_actions, seed=args.seed)
        results["delta_psnr_t4"] = metrics.delta_psnr(truth, with_inferred, with_random, t=4)
        results["psnr_inferred_t4"] = float(metrics.psnr(with_inferred[:, 3], truth[:, 3]).mean())
        results["psnr_random_t4"] = float(metrics.psnr(with_random[:, 3], truth[:, 3]).mean())
        results["generation_psnr"] = float(metrics.psnr(with_inferred[:, 1:], truth[:, 1:]).mean())
        results["generation_ssim"] = float(metrics.ssim(with_inferred[:, 1:], truth[:, 1:]).mean())
        still = reconstruction[:, :1].expand_as(truth[:, 1:])  # the tokenizer is causal in time
        results["generation_psnr_still"] = float(metrics.psnr(still, truth[:, 1:]).mean())
        delta_by_t = {
            t: metrics.delta_psnr(truth, with_inferred, with_random, t=t)
            for t in range(2, args.frames + 1)
        }
        results |= fvd_of(truth, with_inferred)

        # Each action held from two prompts: the first prompt's rollouts make the actions video.
        prompts = truth[:2, 0].repeat_interleave(world.num_actions, dim=0)
        held = torch.arange(world.num_actions).repeat(len(prompts) // world.num_actions)
        game = world.start(prompts, seed=args.seed)
        for _ in range(args.frames - 1):
            game.step(held)
        per_action = game.video()[: world.num_actions]
        motion = motion_by_action(truth, inferred, game.video(), held)
        for kind in ("true", "generated"):
            for action, (dx, dy) in motion[kind].items():
                results[f"motion_{kind}_action{action}_dx"] = dx
                results[f"motion_{kind}_action{action}_dy"] = dy
        agreement = metrics.motion_agreement(motion["true"], motion["generated"])
        if agreement is not None:
            results["motion_agreement"] = agreement

    for name, value in results.items():
        print(f"  {name:26s} {value:10.4f}")
    tags = {f"upstream.{stage}_run": run for stage, run in runs.items()}
    tags |= {"clips": str(args.clips), "samples": str(len(windows)), "frames": str(args.frames),
             "scored_clips": "every clip" if args.every_clip else "held-out"}  # fmt: skip
    if "skipped" in details:
        tags["lam_nmi_skipped"] = details["skipped"]
    tracker = Tracker.open("genie-eval", args.name, uri=uri, tags=tags)
    tracker.log_params({"maskgit_steps": args.maskgit_steps, "temperature": args.temperature,
                        "seed": args.seed,
                        "samples": len(windows), "frames": args.frames})  # fmt: skip
    tracker.log_metrics(results, step=0)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        rows = (truth, reconstruction, with_inferred, with_random)
        files = [
            save_png(frame_grid(*(r[:2] for r in rows)), folder / "comparison.png"),
            *write_clip(folder / "comparison", side_by_side(*(to_uint8(r[0]) for r in rows))),
            *write_clip(folder / "actions", side_by_side(*to_uint8(per_action))),
            plot_delta_psnr(delta_by_t, folder / "delta_psnr_vs_t.png"),
            plot_motion(motion, folder / "motion_by_action.png"),
        ]
        (folder / "metrics.json").write_text(json.dumps(results | {"runs": runs}, indent=2))
        files.append(folder / "metrics.json")
        if "action_map" in details:
            action_map = details["action_map"] | {"source": tracker.run_id or "", "runs": runs}
            (folder / "action_map.json").write_text(json.dumps(action_map, indent=2))
            files.append(folder / "action_map.json")
        for path in files:
            tracker.log_artifact(path, "eval")
            if args.out:
                storage.write_bytes(storage.join(args.out, path.name), path.read_bytes())
        if args.out:
            print(f"artifacts in {args.out}")
    tracker.finish()
    if tracker.active:
        print(f"MLflow run {tracker.run_id} in experiment genie-eval ({uri})")
    return 0


def fvd_of(truth, generated) -> dict[str, float]:
    """FVD between true and generated windows; skipped (with the reason) without I3D weights."""
    from models import metrics
    from models.i3d import i3d_logits, load_i3d

    if truth.shape[1] < 9:
        print(f"FVD skipped: I3D needs >= 9 frames, the windows have {truth.shape[1]}", flush=True)
        return {}
    try:
        network = load_i3d()
    except FileNotFoundError as e:
        print(f"FVD skipped: {e}", flush=True)
        return {}
    print("computing FVD features (I3D, Kinetics-400) ...", flush=True)
    return {"fvd": metrics.fvd(i3d_logits(network, truth), i3d_logits(network, generated))}


if __name__ == "__main__":
    sys.exit(main())
