"""Play a trained world from the command line: one prompt image, a list of actions, one mp4.

The prompt (PNG or JPEG) is center-cropped to the models' 16:9 frame and resized with area
averaging, exactly as the play server does with an upload; each action then generates one
frame (MaskGIT), and the prompt plus every generated frame is written as an mp4, upscaled with
nearest-neighbour so the 160x90 pixels stay sharp in a player. Models are a path to a model.pt
or a registry reference (`genie-dynamics@latest-tiny`, or an MLflow run id).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jobs.common.parsers import command_parser
from jobs.serving.prompt import decode_prompt_image
from jobs.serving.world import (
    add_world_arguments,
    check_world_arguments,
    load_world,
    world_files,
    write_rollout_video,
)
from pipelines.images import to_model

EPILOG = """\
examples:
  genie rollout --prompt level.png --actions 0,3,3,1 --out rollout.mp4
  genie rollout --prompt shot.jpg --actions 1,1,1,1,2,2 --out out.mp4 \\
      --tokenizer genie-tokenizer@latest-tiny --dynamics genie-dynamics@latest-tiny --seed 3
  genie rollout --prompt p.png --actions 0,1 --out o.mp4 --tokenizer tok/model.pt --dynamics dyn/model.pt
"""


def parse_actions(text: str) -> list[int]:
    """'0,3,3,1' -> [0, 3, 3, 1]; raises ValueError naming the entry that is not an integer."""
    actions = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry.lstrip("-").isdigit():
            raise ValueError(f"--actions: {entry!r} is not an integer (expected e.g. 0,3,3,1)")
        actions.append(int(entry))
    return actions


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
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
    check_world_arguments(parser, args)
    out = Path(args.out)
    if out.suffix != ".mp4":
        parser.error(f"--out must end in .mp4, got {args.out}")
    prompt_path = Path(args.prompt)
    if not prompt_path.is_file():
        parser.error(f"--prompt: {args.prompt} is not a file")

    try:
        files = world_files(args.tokenizer, args.dynamics, args.mlflow_uri)
    except ValueError as error:
        parser.error(str(error))
    world = load_world(
        files, args.maskgit_steps, confident=args.confident, decode_context=args.decode_context
    )
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
    game = world.start(to_model(prompt)[None], seed=args.seed)
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
