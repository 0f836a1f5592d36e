"""Evaluate a trained world model on held-out curated clips and log it all to MLflow (genie-eval).

Metrics (stable names, so the MLflow UI compares runs directly):
  tokenizer_psnr, tokenizer_ssim       reconstructions of the held-out windows
  lam_nmi, lam_accuracy, lam_chance_accuracy, lam_codes_used
                                       LAM codes vs the true actions, where an action log sits
                                       beside the source video (the built-in game)
  delta_psnr_t4, psnr_inferred_t4, psnr_random_t4
                                       the paper's ΔtPSNR: frame t generated with the actions
                                       the LAM infers from the truth vs with random actions
  generation_psnr, generation_ssim     generated (inferred actions) vs true frames, all t
  fvd                                  Kinetics-400 I3D features of true vs generated windows
  scroll_true_action<k>, scroll_generated_action<k>, scroll_agreement
                                       side-scrolling: token columns a frame the true frames
                                       the LAM labels k scroll, and rollouts holding k; the
                                       share of scrolling actions whose rollouts scroll their way
Artifacts: comparison video (truth | reconstruction | inferred-action and random-action
generations, mp4 and gif), ΔtPSNR-vs-t plot, one rollout per action from one prompt, and the
scroll per action (true vs generated) as a bar chart.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

EPILOG = """\
examples:
  genie eval --clips data/curated/clips        # models: genie-*@latest-tiny from the registry
  genie eval --clips data/curated/clips --tokenizer <run id> --lam <run id> --dynamics <run id>
  ray job submit --working-dir . -- python -m jobs.evaluate --clips /shared/curated/clips
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", required=True, help="curated clips (Parquet folder)")
    for stage in ("tokenizer", "lam", "dynamics"):
        parser.add_argument(
            f"--{stage}",
            default=f"genie-{stage}@latest-tiny",
            help=f"registered model@alias or MLflow run id (default genie-{stage}@latest-tiny)",
        )
    parser.add_argument("--samples", type=int, default=8, help="held-out windows (default 8)")
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="eval", help="MLflow run name (default: eval)")
    parser.add_argument("--out", type=Path, default=None, help="also keep artifacts here")
    parser.add_argument("--mlflow-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    return parser


def heldout_windows(clips: str, samples: int, frames: int) -> list[dict]:
    """`samples` windows of held-out clips, spread evenly over as many of those clips as there
    are (a metric of the first clip alone says little): frames (T, H, W, 3) uint8 with where
    they came from."""
    import pyarrow.dataset as pads

    from pipelines.training_data import heldout_predicate, kept_clip_ids
    from pipelines.video import read_frames

    is_heldout = heldout_predicate(clips)
    heldout = sum(map(is_heldout, kept_clip_ids(clips)))
    per_clip = math.ceil(samples / max(1, heldout))
    dataset = pads.dataset(clips, format="parquet")
    kept = pads.field("keep") if "keep" in dataset.schema.names else None
    columns = [
        c for c in ("clip_id", "video", "source_uri", "start_s") if c in dataset.schema.names
    ]
    windows: list[dict] = []
    for batch in dataset.to_batches(columns=columns, filter=kept, batch_size=8):
        for row in batch.to_pylist():
            if not is_heldout(str(row["clip_id"])):
                continue
            video = read_frames(row["video"])
            if len(video) < frames:
                continue
            offsets = np.linspace(0, len(video) - frames, per_clip).round().astype(int)
            for offset in dict.fromkeys(offsets.tolist()):  # distinct, in order
                windows.append({**row, "frames": video[offset : offset + frames],
                                "offset": offset})  # fmt: skip
                if len(windows) == samples:
                    return windows
    if not windows:
        raise SystemExit(f"no held-out clips with {frames} frames in {clips}")
    return windows


def true_actions(window: dict, frames: int, fps: float = 10.0) -> np.ndarray | None:
    """The game's action for each transition t -> t+1 of the window, from the action log beside
    its source video (`<stem>.actions.parquet`, as `genie synth` writes); None if there is none.

    Curated frames are 1/fps apart; the action of a transition is the one held longest between
    the two frames' times.
    """
    import pyarrow.parquet as pq

    source = window.get("source_uri")
    if not source or "start_s" not in window:
        return None
    log = Path(source).with_name(Path(source).stem + ".actions.parquet")
    if not log.exists():
        return None
    table = pq.read_table(log, columns=["time_s", "action"])
    times, actions = table.column("time_s").to_numpy(), table.column("action").to_numpy()
    start = window["start_s"] + window["offset"] / fps
    labels = []
    for t in range(frames - 1):
        held = actions[(times >= start + t / fps) & (times < start + (t + 1) / fps)]
        if len(held) == 0:
            return None
        labels.append(np.bincount(held).argmax())
    return np.array(labels)


def lam_alignment(lam, clips: str, samples: int, frames: int) -> dict[str, float]:
    """How the LAM's codes on held-out windows line up with the game's true actions."""
    import torch

    from models import metrics

    windows = heldout_windows(clips, samples, frames)
    video = torch.from_numpy(np.stack([w["frames"] for w in windows])).permute(0, 1, 4, 2, 3)
    codes = lam.infer_actions(video.float() / 255.0).numpy()
    results = {"lam_codes_used": float(len(np.unique(codes))), "lam_windows": float(len(windows))}
    labels = [true_actions(w, frames) for w in windows]
    if any(label is None for label in labels):
        print("no action logs beside the sources: LAM vs true actions skipped", flush=True)
        return results
    alignment = metrics.action_alignment(codes, np.stack(labels))
    return results | {"lam_nmi": alignment.nmi, "lam_accuracy": alignment.accuracy,
                      "lam_chance_accuracy": alignment.chance_accuracy}  # fmt: skip


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.frames < 4:
        parser.error(f"--frames must be >= 4 (ΔtPSNR is taken at t = 4), got {args.frames}")
    if args.samples < 2:
        parser.error(f"--samples must be >= 2 (FVD needs two videos a set), got {args.samples}")
    if args.action_samples < 1:
        parser.error(f"--action-samples must be >= 1, got {args.action_samples}")
    if not Path(args.clips).exists() and "://" not in args.clips:
        parser.error(f"--clips {args.clips} does not exist")

    import torch

    from jobs.tracking import Tracker, resolve_model, tracking_uri
    from models import metrics
    from models.checkpoint import load_trained
    from models.world import WorldModel
    from pipelines.images import frame_grid, save_png, to_uint8

    torch.manual_seed(args.seed)
    uri = tracking_uri(args.mlflow_uri)
    runs, models = {}, {}
    for stage in ("tokenizer", "lam", "dynamics"):
        runs[stage], path = resolve_model(getattr(args, stage), uri)
        models[stage] = load_trained(path)
    world = WorldModel(models["tokenizer"], models["dynamics"], maskgit_steps=args.maskgit_steps)
    lam = models["lam"]

    windows = heldout_windows(args.clips, args.samples, args.frames)
    truth = torch.from_numpy(np.stack([w["frames"] for w in windows])).permute(0, 1, 4, 2, 3)
    truth = truth.float() / 255.0  # (B, T, C, H, W)
    print(f"evaluating on {len(windows)} held-out windows of {args.frames} frames", flush=True)

    results: dict[str, float] = {}
    with torch.no_grad():
        true_tokens = world.tokenizer.encode(truth)
        reconstruction = world.tokenizer.decode(true_tokens)
        results["tokenizer_psnr"] = float(metrics.psnr(reconstruction, truth).mean())
        results["tokenizer_ssim"] = float(metrics.ssim(reconstruction, truth).mean())

        inferred = lam.infer_actions(truth)  # (B, T-1)
        results |= lam_alignment(
            lam, args.clips, max(args.action_samples, len(windows)), args.frames
        )

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
        scroll = scroll_by_action(true_tokens, inferred, game.session.tokens, held)
        results |= {f"scroll_true_action{a}": v for a, v in scroll["true"].items()}
        results |= {f"scroll_generated_action{a}": v for a, v in scroll["generated"].items()}
        agreement = metrics.scroll_agreement(scroll["true"], scroll["generated"])
        if agreement is not None:
            results["scroll_agreement"] = agreement

    for name, value in results.items():
        print(f"  {name:26s} {value:10.4f}")
    tags = {f"upstream.{stage}_run": run for stage, run in runs.items()}
    tags |= {"clips": str(args.clips), "samples": str(len(windows)), "frames": str(args.frames)}
    tracker = Tracker.open("genie-eval", args.name, uri=uri, tags=tags)
    tracker.log_params({"maskgit_steps": args.maskgit_steps, "seed": args.seed,
                        "samples": len(windows), "frames": args.frames})  # fmt: skip
    tracker.log_metrics(results, step=0)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        rows = (truth, reconstruction, with_inferred, with_random)
        files = [
            save_png(frame_grid(*(r[:2] for r in rows)), folder / "comparison.png"),
            *write_clip(folder / "comparison", side_by_side(*(to_uint8(r[0]) for r in rows))),
            *write_clip(folder / "actions", side_by_side(*to_uint8(per_action))),
            plot_delta_psnr(delta_by_t, folder / "delta_psnr_vs_t.png"),
            plot_scroll(scroll, folder / "scroll_by_action.png"),
        ]
        (folder / "metrics.json").write_text(json.dumps(results | {"runs": runs}, indent=2))
        for path in [*files, folder / "metrics.json"]:
            tracker.log_artifact(path, "eval")
        if args.out:
            print(f"artifacts in {folder}")
    tracker.finish()
    if tracker.active:
        print(f"MLflow run {tracker.run_id} in experiment genie-eval ({uri})")
    return 0


def scroll_by_action(true_tokens, inferred, generated_tokens, held) -> dict[str, dict[int, float]]:
    """Mean token-column shift a frame (`metrics.horizontal_shift`) by action: of true frames
    (B, T, gh, gw) grouped by the action the LAM infers for each transition (B, T-1), and of
    rollouts (B', T', gh, gw) that hold action `held` (B',) throughout."""
    from models import metrics

    def shifts(tokens):
        return metrics.horizontal_shift(tokens[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(0, 1))

    true_shift = shifts(true_tokens).view(inferred.shape).float()
    generated_shift = shifts(generated_tokens).view(len(held), -1).float()
    return {
        "true": {int(a): float(true_shift[inferred == a].mean()) for a in inferred.unique()},
        "generated": {int(a): float(generated_shift[held == a].mean()) for a in held.unique()},
    }


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


def side_by_side(*videos: np.ndarray, gap: int = 2) -> np.ndarray:
    """(T, H, W, 3) videos next to each other, white gaps between: one (T, H, W', 3) video."""
    height = videos[0].shape[1]
    spacer = np.full((len(videos[0]), height, gap, 3), 255, np.uint8)
    parts = [part for video in videos for part in (video, spacer)][:-1]
    return np.concatenate(parts, axis=2)


def write_clip(stem: Path, video: np.ndarray, fps: int = 5) -> list[Path]:
    """mp4 (H.264) and gif of a (T, H, W, 3) uint8 video, upscaled 2x to be watchable."""
    from PIL import Image

    from pipelines.video import write_video

    video = video.repeat(2, axis=1).repeat(2, axis=2)
    video = video[:, : video.shape[1] // 2 * 2, : video.shape[2] // 2 * 2]  # H.264 wants even
    mp4, gif = stem.with_suffix(".mp4"), stem.with_suffix(".gif")
    write_video(mp4, video, fps)
    images = [Image.fromarray(frame) for frame in video]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    return [mp4, gif]


def plot_delta_psnr(delta_by_t: dict[int, float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.plot(list(delta_by_t), list(delta_by_t.values()), marker="o")
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xlabel("t (frames after the prompt frame, which is t = 1)")
    axes.set_ylabel("ΔtPSNR (dB)")
    axes.set_title("Controllability: inferred vs random actions")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_scroll(scroll: dict[str, dict[int, float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actions = sorted(scroll["generated"])
    true = [scroll["true"].get(a, float("nan")) for a in actions]
    generated = [scroll["generated"][a] for a in actions]
    figure, axes = plt.subplots(figsize=(5, 3.2))
    x = np.arange(len(actions))
    axes.bar(x - 0.2, true, 0.4, label="true frames the LAM labels with it")
    axes.bar(x + 0.2, generated, 0.4, label="rollouts holding it")
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xticks(x, [str(a) for a in actions])
    axes.set_xlabel("latent action")
    axes.set_ylabel("scroll (token columns a frame)")
    axes.set_title("Does each action move the world its way?")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


if __name__ == "__main__":
    sys.exit(main())
