"""The whole chain on built-in synthetic game video, on the local platform.

Brings up the local Ray + MLflow (`make up`), then submits each stage to that cluster with
`ray job submit`, exactly as a user would, so every stage shows in the Ray dashboard's Jobs
tab and in MLflow. A stage whose output is already complete is skipped, so a rerun is quick.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.i3d import weights_path

REPO = Path(__file__).resolve().parents[1]
LOCALCTL = REPO / "platform" / "local" / "localctl.py"
# The job's copy of the repo has no .genie/ (ignored files are not uploaded): point at the
# FVD weights `make install` converted, by absolute path.
RUNTIME_ENV = json.dumps({"env_vars": {"GENIE_I3D_WEIGHTS": str(weights_path())}})

EPILOG = """\
example:
  make demo                      # same as: python -m jobs.demo
  python -m jobs.demo --videos 24 # a larger corpus
"""


@dataclass(frozen=True)
class DemoStep:
    name: str
    done: Callable[[], bool]  # True when its output is complete
    command: Callable[[], list[str]]  # what `ray job submit --` runs; built when it is its turn


def run_id(runs: Path, name: str) -> str:
    """MLflow run id of a finished training run, from the receipt `genie train` writes."""
    return json.loads((runs / name / "result.json").read_text())["run_id"]


def job(module: str, *args: object) -> list[str]:
    return ["python", "-m", f"jobs.{module}", *map(str, args)]


def demo_steps(data: Path, videos: int, seed: int) -> list[DemoStep]:
    raw, curated, runs = data / "raw", data / "curated", data / "runs"
    clips, tokenized = curated / "clips", data / "tokenized"

    def train(stage: str, data_path: Path, *extra: str) -> list[str]:
        return job("train", "--stage", stage, "--preset", f"demo-{stage}", f"data={data_path}",
                   f"name=demo-{stage}", f"storage_path={runs}", *extra)  # fmt: skip

    def upstream() -> list[str]:
        return [f"tokenizer_run={run_id(runs, 'demo-tokenizer')}",
                f"lam_run={run_id(runs, 'demo-lam')}"]  # fmt: skip

    def trained_models() -> list[str]:
        return [f"--{s}={run_id(runs, f'demo-{s}')}" for s in ("tokenizer", "lam", "dynamics")]

    def evaluate() -> list[str]:
        return job("evaluate", "--clips", clips, "--out", data / "eval", "--samples", 8,
                   "--frames", 10, "--maskgit-steps", 12, *trained_models())  # fmt: skip

    def tokenize() -> list[str]:
        return job("tokenize", "--clips", clips, "--out", tokenized, "--window", 4, "--actors", 2,
                   "--tokenizer", run_id(runs, "demo-tokenizer"), "--lam", run_id(runs, "demo-lam"))  # fmt: skip

    return [
        DemoStep(
            "synth: render the synthetic platformer corpus",
            lambda: (raw / "manifest.parquet").exists(),
            lambda: job("synth", "--out", raw, "--videos", videos, "--seed", seed),
        ),
        DemoStep(
            "curate: decode, clip to 16 s at 10 FPS 160x90, score, filter (Ray Data)",
            lambda: (curated / "summary.json").exists(),
            lambda: job("curate", "run", "--source", raw / "manifest.parquet", "--out", curated),
        ),
        DemoStep(
            "train tokenizer (Ray Train)",
            lambda: (runs / "demo-tokenizer" / "result.json").exists(),
            lambda: train("tokenizer", clips),
        ),
        DemoStep(
            "train latent action model (Ray Train)",
            lambda: (runs / "demo-lam" / "result.json").exists(),
            lambda: train("lam", clips),
        ),
        DemoStep(
            "tokenize clips with latent actions (Ray Data, actor pool)",
            lambda: (tokenized / "_SUCCESS").exists(),
            tokenize,
        ),
        DemoStep(
            "train dynamics (Ray Train)",
            lambda: (runs / "demo-dynamics" / "result.json").exists(),
            lambda: train("dynamics", tokenized / "tokens", *upstream()),
        ),
        DemoStep(
            "evaluate: PSNR, SSIM, ΔtPSNR, FVD, LAM vs true actions; rollout videos",
            lambda: (data / "eval" / "metrics.json").exists(),
            evaluate,
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
        "--videos", type=int, default=10, help="gameplay videos to render (default 10)"
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
    for number, step in enumerate(demo_steps(data, args.videos, args.seed), start=1):
        print(f"\n== [{number}] {step.name}", flush=True)
        if step.done():
            print("   already done, skipped (delete its output to redo it)")
            continue
        submit = ["ray", "job", "submit", "--working-dir", str(REPO),
                  "--runtime-env-json", RUNTIME_ENV, "--", *step.command()]  # fmt: skip
        if subprocess.run(submit, env=env, cwd=REPO).returncode != 0:
            print(
                f"\nstep failed: {step.name}. Its logs: `ray job logs <id>` or the Ray dashboard."
            )
            return 1
    minutes = (time.monotonic() - started) / 60
    print(f"\n== done in {minutes:.1f} min")
    print(f"   data:             {data}")
    print(f"   Ray dashboard:    {env['RAY_API_SERVER_ADDRESS']}  (Jobs tab: one job per stage)")
    print(f"   MLflow UI:        {env['MLFLOW_TRACKING_URI']}")
    print(f"   curation funnel:  {data / 'curated' / 'summary.json'}")
    print(f"   eval metrics:     {data / 'eval' / 'metrics.json'}")
    print(f"   rollout videos:   {data / 'eval' / 'comparison.mp4'} (truth | reconstruction |")
    print("                     inferred actions | random actions) and")
    print(f"                     {data / 'eval' / 'actions.mp4'} (one rollout per latent action)")
    print(f"   scroll by action: {data / 'eval' / 'scroll_by_action.png'} (does each action move")
    print("                     the world the way the true frames it labels move?)")
    print(f"   play it:          genie play --clips {data / 'curated' / 'clips'}")
    print("   Stop the platform with `make down`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
