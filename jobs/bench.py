"""Benchmarks that print ratios measured side by side in one run (these machines are shared and
noisy, so absolute times alone mean little).

  curate  clips/s per core of the curation pipeline vs a bare PyAV decode+resize loop; memory
          (--hostile: a hostile folder's run; --dedup: the near-copy search at growing input)
  train   samples/s of the Ray Train loop vs a plain PyTorch loop on the same model and data
  models  ST vs full attention memory/time over T; sampler frames/s with and without the cache
  play    frames/s of play (one frame per action, 25 MaskGIT steps) with and without the cache
"""

from __future__ import annotations

import argparse
import importlib
import sys

from jobs.common.parsers import command_parser

# name -> module with run(argv) -> int
BENCHMARKS: dict[str, str] = {
    "curate": "jobs.benchmarks.curate",
    "train": "jobs.benchmarks.train",
    "models": "jobs.benchmarks.models",
    "play": "jobs.benchmarks.play",
}

EPILOG = """\
examples:
  make bench                          # every benchmark, one after the other
  python -m jobs.bench train          # one of them
  python -m jobs.bench models --frames 4 8 16   # options after the name go to that benchmark
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    parser.add_argument("name", nargs="?", choices=[*BENCHMARKS, "all"], default="all")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="passed to the benchmark")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        print(f"\n==== benchmark: {name}", flush=True)
        code = importlib.import_module(BENCHMARKS[name]).run(args.options)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
