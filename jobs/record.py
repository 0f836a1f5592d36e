"""Record a real game as raw video: `genie record coinrun` plays procgen's CoinRun, the Genie
paper's case study, with a seeded sticky random policy and writes what `genie synth` writes
for the built-in game: `<name>.mp4` (10 FPS, 160x90, H.264), `<name>.actions.parquet` (the
game's action for every frame: noop, left, right, jump, left+jump, right+jump) and
`manifest.parquet` (`uri`, `actions_uri`), ready for `genie curate run --source`.

procgen2 pins numpy < 2, which the platform's environment cannot take, so the recorder runs
in a small virtual environment of its own, created on first use (`--venv`; pip fetches four
pinned packages from the package index, ~650 MB, ~15 s) and reused afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pipelines.record
from jobs.common.parsers import command_parser
from jobs.common.venvs import pinned_venv

GAMES = ("coinrun",)
# The recorder's own environment: procgen2 0.10.7 needs numpy < 2 (through gym3) and an
# OpenCV and pyarrow built against it.
RECORDER_PACKAGES = (
    "procgen2==0.10.7",
    "numpy==1.26.4",
    "av==18.1.0",
    "opencv-python-headless==4.11.0.86",
    "pyarrow==15.0.2",
)
REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = Path(os.environ.get("GENIE_HOME", REPO / ".genie")) / "recorders" / "procgen"

EPILOG = """\
examples:
  genie record coinrun --out data/coinrun/raw --segments 120 --seed 0
  genie record coinrun --out /tmp/cr --segments 2 --seconds 5 --hold-min 5 --hold-max 15
  make recorder      # only create the recorder's environment
"""


def ensure_recorder(venv_dir: Path) -> Path:
    """The recorder environment's python, creating the environment first where it is missing."""
    return pinned_venv(venv_dir, RECORDER_PACKAGES)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    parser.add_argument("game", choices=GAMES, help="the game to record")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the videos to")
    parser.add_argument(
        "--segments", type=int, default=120, help="videos to record, each a new game (default 120)"
    )
    parser.add_argument(
        "--seconds", type=float, default=33.0, help="length of each video (default 33)"
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument(
        "--hold-min",
        type=int,
        default=1,
        help="the policy holds each action it draws for a uniform number of frames in "
        "[--hold-min, --hold-max] (default 1..5)",
    )
    parser.add_argument("--hold-max", type=int, default=5, help="see --hold-min (default 5)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes recording videos side by side (default: the CPUs this process may use, "
        "at most 16); the files are the same bytes for any number",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=DEFAULT_VENV,
        help=f"the recorder's virtual environment (default {DEFAULT_VENV})",
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not 1 <= args.segments <= 100_000:
        parser.error(f"--segments must be in 1..100000, got {args.segments}")
    if not 0 < args.seconds <= 3600:
        parser.error(f"--seconds must be in (0, 3600], got {args.seconds}")
    if not 0 <= args.seed < 21474:
        parser.error(f"--seed must be in 0..21473, got {args.seed}")
    if not 1 <= args.hold_min <= args.hold_max <= 1000:
        parser.error(
            f"need 1 <= --hold-min <= --hold-max <= 1000, got {args.hold_min}..{args.hold_max}"
        )
    if args.workers is not None and not 1 <= args.workers <= 256:
        parser.error(f"--workers must be in 1..256, got {args.workers}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    python = ensure_recorder(args.venv.resolve())
    script = Path(pipelines.record.__file__).with_name(f"{args.game}.py")
    command = [str(python), str(script), "--out", str(args.out), "--segments", str(args.segments),
               "--seconds", str(args.seconds), "--seed", str(args.seed),
               "--hold-min", str(args.hold_min), "--hold-max", str(args.hold_max)]  # fmt: skip
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    recorder = subprocess.Popen(command)
    try:
        return recorder.wait()
    except KeyboardInterrupt:  # the recorder got it too: let it stop its workers and exit
        recorder.wait()
        raise


if __name__ == "__main__":
    sys.exit(main())
