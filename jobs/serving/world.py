"""Loading a playable world (tokenizer + dynamics) by path or registry reference, and writing
rollouts as video: what `genie play` and `genie rollout` share.

Models named by registry reference or run id are loaded as a set that belongs together
(`jobs.common.tracking.resolve_world`): without --tokenizer, the one the dynamics model's token
shards were made with; a tokenizer of another lineage, vocabulary or grid is refused, naming
both. A model.pt path (or exported folder) is loaded as it is, and checked for vocabulary and
grid against the other.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from jobs.common.tracking import resolve_world
from models.checkpoint import check_pair, load_trained, read_info
from models.world import WorldModel
from pipelines.images import to_uint8
from pipelines.video import write_video

VIDEO_FPS = 10  # the curated clips' rate, so a rollout plays at the speed the model learned
VIDEO_SCALE = 4
# Play's sampling: measured against 25 rounds on held-out windows, see docs/results.md ("Play").
PLAY_MASKGIT_STEPS = 4
PLAY_CONFIDENT = 0.6
PLAY_DECODE_CONTEXT = 1


def write_rollout_video(
    video: torch.Tensor | Iterable[np.ndarray],
    target: str | Path | io.BytesIO,
    scale: int = VIDEO_SCALE,
) -> int:
    """Frames -> an mp4 at `target`, upscaled `scale`x (nearest). Frames are a (T, C, H, W)
    tensor in [0, 1] or RGB uint8 (H, W, 3) arrays one by one; either way they are upscaled
    and encoded one at a time, so a long video never sits in memory at the upscaled size."""
    frames = to_uint8(video) if isinstance(video, torch.Tensor) else video
    return write_video(target, upscaled(frames, scale), VIDEO_FPS, container=".mp4")


def upscaled(frames: Iterable[np.ndarray], scale: int) -> Iterator[np.ndarray]:
    for frame in frames:
        yield frame.repeat(scale, axis=0).repeat(scale, axis=1)


def world_files(
    tokenizer: str | None, dynamics: str, mlflow_uri: str | None = None
) -> dict[str, tuple[str, str]]:
    """Stage -> (run id or path, local path) of a dynamics model and its tokenizer (paths or
    registry references; no tokenizer: the dynamics model's own) that belong together. Raises
    ValueError naming both when they do not."""
    named = {"tokenizer": tokenizer, "dynamics": dynamics}
    found = {stage: (ref, ref) for stage, ref in named.items() if ref and Path(ref).exists()}
    if "dynamics" in found and "tokenizer" not in found:
        raise ValueError("a dynamics model.pt path needs its tokenizer: give --tokenizer too")
    references = {stage: ref for stage, ref in named.items() if stage not in found}
    if references:
        resolved = resolve_world(references, uri=mlflow_uri)
        found |= {stage: (run, path) for stage, (run, path) in resolved.items()}
    if len(references) < 2:  # resolve_world checks a pair it resolved itself
        check_pair(read_info(found["tokenizer"][1]), read_info(found["dynamics"][1]),
                   (found["tokenizer"][0], found["dynamics"][0]))  # fmt: skip
    return found


def load_world(
    files: dict[str, tuple[str, str]],
    maskgit_steps: int,
    device: str = "cpu",
    confident: float | None = None,
    decode_context: int = PLAY_DECODE_CONTEXT,
) -> WorldModel:
    """The WorldModel of `world_files`' models, sampling with `maskgit_steps` rounds at most,
    keeping samples more probable than `confident` at once, and decoding each new frame with
    `decode_context` frames."""
    print(f"tokenizer: {files['tokenizer'][0]}; dynamics: {files['dynamics'][0]}", flush=True)
    return WorldModel(
        load_trained(files["tokenizer"][1], device),
        load_trained(files["dynamics"][1], device),
        maskgit_steps=maskgit_steps,
        confident=confident,
        decode_context=decode_context,
    )


def add_world_arguments(parser: argparse.ArgumentParser) -> None:
    """The options naming the world to load (`load_world`); `genie play` takes the same."""
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="path to a model.pt, registered model@alias, or run id (default: the tokenizer the "
        "dynamics model was trained with; needed with a dynamics model.pt path)",
    )
    parser.add_argument(
        "--dynamics",
        default="genie-dynamics@latest-tiny",
        help="path to a model.pt, registered model@alias, or run id",
    )
    parser.add_argument(
        "--maskgit-steps",
        type=int,
        default=PLAY_MASKGIT_STEPS,
        help=f"MaskGIT rounds a frame, at most (default {PLAY_MASKGIT_STEPS}; the paper: 25)",
    )
    parser.add_argument(
        "--confident",
        type=float,
        default=PLAY_CONFIDENT,
        help="keep every sampled token more probable than this at once (a frame's rounds end "
        f"when none is left); 1: the schedule alone, as the paper (default {PLAY_CONFIDENT})",
    )

    parser.add_argument(
        "--decode-context",
        type=int,
        default=PLAY_DECODE_CONTEXT,
        help="frames the tokenizer decodes each new frame with: it and the ones before "
        f"(default {PLAY_DECODE_CONTEXT}; evaluation uses 4)",
    )


def check_world_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad sampling options before any model is loaded (argparse's error, exit 2)."""
    if args.maskgit_steps < 1:
        parser.error(f"--maskgit-steps must be >= 1, got {args.maskgit_steps}")
    if args.decode_context < 1:
        parser.error(f"--decode-context must be >= 1, got {args.decode_context}")
    if not 0 < args.confident <= 1:
        parser.error(f"--confident must be a probability in (0, 1], got {args.confident}")
