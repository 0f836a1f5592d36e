"""Loading a playable world (tokenizer + dynamics) by path or registry reference, and writing
rollouts as video: what `genie play` and `genie rollout` share."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch

from jobs.common.tracking import resolve_model
from models.checkpoint import load_trained
from models.world import WorldModel
from pipelines.images import to_uint8
from pipelines.video import write_video

VIDEO_FPS = 10  # the curated clips' rate, so a rollout plays at the speed the model learned
VIDEO_SCALE = 4


def write_rollout_video(
    video: torch.Tensor, target: Path | io.BytesIO, scale: int = VIDEO_SCALE
) -> int:
    """Frames (T, C, H, W) in [0, 1] -> an mp4 at `target`, upscaled `scale`x (nearest)."""
    frames = to_uint8(video)
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    return write_video(target, frames, VIDEO_FPS, container=".mp4")


def model_file(reference: str, mlflow_uri: str | None) -> tuple[str, str]:
    """(what it is, local path): a model.pt path as is, else a registry reference or run id."""
    if Path(reference).is_file():
        return reference, reference
    run_id, path = resolve_model(reference, mlflow_uri)
    return f"run {run_id}", path


def load_world(
    tokenizer: str,
    dynamics: str,
    maskgit_steps: int,
    mlflow_uri: str | None = None,
    device: str = "cpu",
) -> WorldModel:
    """The WorldModel named by two references (paths or registry references)."""
    tokenizer_source, tokenizer_path = model_file(tokenizer, mlflow_uri)
    dynamics_source, dynamics_path = model_file(dynamics, mlflow_uri)
    print(f"tokenizer: {tokenizer_source}; dynamics: {dynamics_source}", flush=True)
    return WorldModel(
        load_trained(tokenizer_path, device),
        load_trained(dynamics_path, device),
        maskgit_steps=maskgit_steps,
    )


def add_world_arguments(parser: argparse.ArgumentParser) -> None:
    """The options naming the world to load (`load_world`); `genie play` takes the same."""
    parser.add_argument(
        "--tokenizer",
        default="genie-tokenizer@latest-tiny",
        help="path to a model.pt, registered model@alias, or run id",
    )
    parser.add_argument(
        "--dynamics",
        default="genie-dynamics@latest-tiny",
        help="path to a model.pt, registered model@alias, or run id",
    )
    parser.add_argument("--maskgit-steps", type=int, default=25, help="MaskGIT rounds per frame")
