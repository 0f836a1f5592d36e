"""Play a trained world from the command line: one prompt image, a list of actions, one mp4.

The prompt (PNG or JPEG) is center-cropped to the models' 16:9 frame and resized with area
averaging, exactly as the play server does with an upload; each action then generates one
frame (MaskGIT), and the prompt plus every generated frame is written as an mp4, upscaled with
nearest-neighbour so the 160x90 pixels stay sharp in a player. Models are a path to a model.pt
or a registry reference (`genie-dynamics@latest-tiny`, or an MLflow run id).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from jobs.tracking import resolve_model
from models.checkpoint import load_trained
from models.world import WorldModel
from pipelines.images import to_uint8
from pipelines.video import write_video

EPILOG = """\
examples:
  genie rollout --prompt level.png --actions 0,3,3,1 --out rollout.mp4
  genie rollout --prompt shot.jpg --actions 1,1,1,1,2,2 --out out.mp4 \\
      --tokenizer genie-tokenizer@latest-tiny --dynamics genie-dynamics@latest-tiny --seed 3
  genie rollout --prompt p.png --actions 0,1 --out o.mp4 --tokenizer tok/model.pt --dynamics dyn/model.pt
"""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"
# JPEG start-of-frame markers carry the size; C4 (Huffman), C8 (reserved), CC (arithmetic) do not.
JPEG_SIZE_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
JPEG_BARE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
DEFAULT_MAX_PIXELS = 4096 * 4096
VIDEO_FPS = 10  # the curated clips' rate, so a rollout plays at the speed the model learned
VIDEO_SCALE = 4


class UnsupportedImage(ValueError):
    """The bytes are not a PNG or JPEG that can be decoded."""


class ImageTooLarge(ValueError):
    """The image has more pixels than allowed (a small file can decode to gigabytes)."""


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) read from a PNG or JPEG header, without decoding the pixels."""
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(JPEG_SIGNATURE):
        at = 2
        while at + 9 <= len(data):
            if data[at] != 0xFF:
                break
            marker = data[at + 1]
            if marker == 0xFF:  # fill byte before a marker
                at += 1
            elif marker in JPEG_SIZE_MARKERS:
                height = int.from_bytes(data[at + 5 : at + 7], "big")
                return int.from_bytes(data[at + 7 : at + 9], "big"), height
            elif marker in JPEG_BARE_MARKERS:
                at += 2
            else:
                at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    raise UnsupportedImage("not a PNG or JPEG image (its first bytes are neither signature)")


def fit_to_frame(image: np.ndarray, frame_shape: tuple[int, int, int]) -> np.ndarray:
    """An (H, W, 3) image center-cropped to the frame's aspect ratio and area-resized to it."""
    _, frame_h, frame_w = frame_shape
    height, width = image.shape[:2]
    if width * frame_h > height * frame_w:  # wider than the frame: keep the middle columns
        crop_w = max(1, round(height * frame_w / frame_h))
        left = (width - crop_w) // 2
        image = image[:, left : left + crop_w]
    else:
        crop_h = max(1, round(width * frame_h / frame_w))
        top = (height - crop_h) // 2
        image = image[top : top + crop_h]
    return cv2.resize(image, (frame_w, frame_h), interpolation=cv2.INTER_AREA)


def decode_prompt_image(
    data: bytes, frame_shape: tuple[int, int, int], max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """PNG/JPEG bytes -> RGB uint8 (H, W, 3) at the models' frame size.

    The size is checked from the header before decoding, so a decompression bomb costs nothing.
    """
    width, height = image_size(data)
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise UnsupportedImage("the PNG/JPEG header is valid but the image does not decode")
    return fit_to_frame(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), frame_shape)


def frame_to_model(frame: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> (1, 3, H, W) float in [0, 1], the models' layout."""
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0


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


def parse_actions(text: str) -> list[int]:
    """'0,3,3,1' -> [0, 3, 3, 1]; raises ValueError naming the entry that is not an integer."""
    actions = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry.lstrip("-").isdigit():
            raise ValueError(f"--actions: {entry!r} is not an integer (expected e.g. 0,3,3,1)")
        actions.append(int(entry))
    return actions


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


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prompt", required=True, help="prompt frame: a PNG or JPEG file")
    parser.add_argument("--actions", required=True, help="comma-separated actions, e.g. 0,3,3,1")
    parser.add_argument("--out", required=True, help="output video (.mp4)")
    add_world_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--mlflow-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        actions = parse_actions(args.actions)
    except ValueError as error:
        parser.error(str(error))
    if args.maskgit_steps < 1:
        parser.error(f"--maskgit-steps must be >= 1, got {args.maskgit_steps}")
    out = Path(args.out)
    if out.suffix != ".mp4":
        parser.error(f"--out must end in .mp4, got {args.out}")
    prompt_path = Path(args.prompt)
    if not prompt_path.is_file():
        parser.error(f"--prompt: {args.prompt} is not a file")

    world = load_world(args.tokenizer, args.dynamics, args.maskgit_steps, args.mlflow_uri)
    bad = [a for a in actions if not 0 <= a < world.num_actions]
    if bad:
        parser.error(
            f"--actions: {bad[0]} is out of range; this model has {world.num_actions} actions, "
            f"0..{world.num_actions - 1}"
        )
    try:
        prompt = decode_prompt_image(prompt_path.read_bytes(), world.frame_shape)
    except ValueError as error:
        parser.error(f"--prompt {args.prompt}: {error}")

    started = time.perf_counter()
    game = world.start(frame_to_model(prompt), seed=args.seed)
    for action in actions:
        game.step(action)
    seconds = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = write_rollout_video(game.video()[0], out)
    print(
        f"wrote {out}: {frames} frames (prompt + {len(actions)} actions), "
        f"{len(actions) / seconds:.2f} generated frames/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
