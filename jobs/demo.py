"""The whole chain on built-in synthetic game video, on the local platform.

Brings up the local Ray + MLflow (`make up`), then submits each stage to that cluster with
`ray job submit`, exactly as a user would, so every stage shows in the Ray dashboard's Jobs
tab and in MLflow. A stage whose output is already complete is skipped, so a rerun is quick.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCALCTL = REPO / "platform" / "local" / "localctl.py"

EPILOG = """\
example:
  make demo                      # same as: python -m jobs.demo
  python -m jobs.demo --videos 8 # a smaller corpus
"""


@dataclass(frozen=True)
class Stage:
    name: str
    done: Callable[[], bool]  # True when its output is complete
    command: list[str]  # what `ray job submit --` runs


def stages(data: Path, videos: int, seed: int) -> list[Stage]:
    raw = data / "raw"
    return [
        Stage(
            name="synth: render the synthetic platformer corpus",
            done=lambda: (raw / "manifest.parquet").exists(),
            command=[
                "python",
                "-m",
                "jobs.synth",
                "--out",
                str(raw),
                "--videos",
                str(videos),
                "--seed",
                str(seed),
            ],
        ),
    ]


def platform_env() -> dict[str, str]:
    """The environment `make up` writes to .genie/env: where the cluster and MLflow are."""
    env = dict(os.environ)
    home = Path(os.environ.get("GENIE_HOME", REPO / ".genie"))
    for line in (home / "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.replace("$PATH", env.get("PATH", ""))
    return env


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO / ".genie" / "demo",
        help="where the demo data goes (default: .genie/demo)",
    )
    parser.add_argument(
        "--videos", type=int, default=30, help="gameplay videos to render (default 30)"
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.videos < 1:
        build_parser(prog).error(f"--videos must be >= 1, got {args.videos}")
    started = time.monotonic()
    print("== local platform: Ray head + MLflow server", flush=True)
    subprocess.run([sys.executable, str(LOCALCTL), "up"], check=True)
    env = platform_env()
    data = args.data.resolve()
    for number, stage in enumerate(stages(data, args.videos, args.seed), start=1):
        print(f"\n== [{number}] {stage.name}", flush=True)
        if stage.done():
            print("   already done, skipped (delete its output to redo it)")
            continue
        submit = ["ray", "job", "submit", "--working-dir", str(REPO), "--", *stage.command]
        if subprocess.run(submit, env=env, cwd=REPO).returncode != 0:
            print(
                f"\nstage failed: {stage.name}. Its logs: `ray job logs <id>` or the Ray dashboard."
            )
            return 1
    minutes = (time.monotonic() - started) / 60
    print(f"\n== done in {minutes:.1f} min")
    print(f"   data:             {data}")
    print(f"   Ray dashboard:    {env['RAY_API_SERVER_ADDRESS']}  (Jobs tab: one job per stage)")
    print(f"   MLflow UI:        {env['MLFLOW_TRACKING_URI']}")
    print("   Stop the platform with `make down`.")
    print(
        "   Not built yet: curation (issue 4), model training (issues 5, 6), eval and play (issue 7)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
