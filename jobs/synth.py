"""Render the built-in synthetic platformer corpus: the demo's raw video, no download needed.

Each gameplay video (30 FPS, 320x180; mp4 H.264, some webm and mkv) comes with
`<name>.actions.parquet`, the action held after every frame (noop, left, right, jump,
left+jump, right+jump). Unless --no-bad, the corpus also holds the sources curation must
handle: a variable-frame-rate capture, static and black screens, heavy scene cuts, a too
short and a tiny-resolution video, a near-duplicate, and truncated, corrupt, zero-byte,
non-video and audio-only files. `manifest.parquet` lists them all with what curation should
do with each. The same seed gives the same corpus; a killed run resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs.common.parsers import command_parser

EPILOG = """\
examples:
  genie synth --out data/raw --videos 30 --seed 0
  genie synth --out /tmp/raw --videos 2 --duration-range 20,25 --no-bad
  ray job submit --working-dir . -- python -m jobs.synth --out /shared/raw --videos 100
"""


def duration_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX seconds, got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"need 0 < MIN <= MAX, got {text!r}")
    return low, high


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the corpus to")
    parser.add_argument(
        "--videos", type=int, default=30, help="gameplay videos to render (default: 30)"
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default: 0)")
    parser.add_argument(
        "--duration-range",
        type=duration_range,
        default=(20.0, 120.0),
        metavar="MIN,MAX",
        help="gameplay length range in seconds (default: 20,120)",
    )
    parser.add_argument(
        "--no-bad", action="store_true", help="only gameplay videos, none of the bad sources"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="render processes (default: one per core)"
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.videos < 0:
        build_parser(prog).error(f"--videos must be >= 0, got {args.videos}")
    from pipelines.synth import generate_corpus

    generate_corpus(
        args.out,
        videos=args.videos,
        seed=args.seed,
        duration_range=args.duration_range,
        bad=not args.no_bad,
        workers=args.workers,
        progress=lambda line: print(line, flush=True),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
