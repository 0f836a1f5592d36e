"""The whole chain, raw video to a playable world, on the local platform.

Brings up the local Ray + MLflow (`make up`), then submits each stage to that cluster with
`ray job submit`, exactly as a user would, so every stage shows in the Ray dashboard's Jobs
tab and in MLflow. A stage whose output is already complete is skipped, so a rerun is quick.

The raw video is the built-in platformer (`--game platformer`, rendered by `genie synth`),
CoinRun played by a random policy (`--game coinrun`, recorded by `genie record`), or your own
footage: put it in DATA/raw with a manifest.parquet (`uri`, one row a video) and run with
`--data DATA`; where a video has an action log (`<stem>.actions.parquet` beside it, or the
manifest's `actions_uri`: `time_s`, `action`, optional `action_name`), evaluation scores the
latent actions against it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobs.common.parsers import command_parser
from jobs.record import DEFAULT_VENV
from models.i3d import weights_path

REPO = Path(__file__).resolve().parents[1]
LOCALCTL = REPO / "platform" / "local" / "localctl.py"
# The job's copy of the repo has no .genie/ (ignored files are not uploaded): point at the
# FVD weights `make install` converted, by absolute path.
RUNTIME_ENV = json.dumps({"env_vars": {"GENIE_I3D_WEIGHTS": str(weights_path())}})

EPILOG = """\
examples:
  make demo                            # same as: python -m jobs.demo (the built-in platformer)
  make demo GAME=coinrun               # same as: python -m jobs.demo --game coinrun
  python -m jobs.demo --videos 24      # a larger corpus
  python -m jobs.demo --data ~/footage # your videos in ~/footage/raw, listed in its manifest.parquet
"""


@dataclass(frozen=True)
class Game:
    """Where a demo's raw video comes from and which training presets fit it."""

    default_videos: int
    presets: str  # training presets jobs/configs/train/<presets>-<stage>.yaml
    source: Callable[[Path, int, int], list[str]]  # (raw folder, videos, seed) -> job command


def render_platformer(raw: Path, videos: int, seed: int) -> list[str]:
    return job("synth", "--out", raw, "--videos", videos, "--seed", seed)


def record_coinrun(raw: Path, segments: int, seed: int) -> list[str]:
    return job("record", "coinrun", "--out", raw, "--segments", segments, "--seed", seed,
               "--hold-min", 1, "--hold-max", 5, "--venv", DEFAULT_VENV.resolve())  # fmt: skip


GAMES: dict[str, Game] = {
    "platformer": Game(default_videos=10, presets="demo", source=render_platformer),
    "coinrun": Game(default_videos=120, presets="demo-coinrun", source=record_coinrun),
}


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


def demo_steps(data: Path, game: Game, videos: int, seed: int) -> list[DemoStep]:
    raw, curated, runs = data / "raw", data / "curated", data / "runs"
    clips, tokenized = curated / "clips", data / "tokenized"

    def train(stage: str, data_path: Path, *extra: str) -> list[str]:
        return job("train", "--stage", stage, "--preset", f"{game.presets}-{stage}", f"data={data_path}",
                   f"name=demo-{stage}", f"storage_path={runs}", *extra)  # fmt: skip

    def upstream() -> list[str]:
        return [f"tokenizer_run={run_id(runs, 'demo-tokenizer')}",
                f"lam_run={run_id(runs, 'demo-lam')}"]  # fmt: skip

    def trained_models() -> list[str]:
        return [f"--{s}={run_id(runs, f'demo-{s}')}" for s in ("tokenizer", "lam", "dynamics")]

    def evaluate() -> list[str]:
        return job("evaluate", "--clips", clips, "--actions", raw / "manifest.parquet",
                   "--out", data / "eval", "--samples", 32,
                   "--frames", 10, "--maskgit-steps", 12, "--temperature", 0.5,
                   *trained_models())  # fmt: skip

    def tokenize() -> list[str]:
        return job("tokenize", "--clips", clips, "--out", tokenized, "--window", 4, "--actors", 2,
                   "--tokenizer", run_id(runs, "demo-tokenizer"), "--lam", run_id(runs, "demo-lam"))  # fmt: skip

    return [
        DemoStep(
            "raw video: render or record the game (skipped where DATA/raw/manifest.parquet is)",
            lambda: (raw / "manifest.parquet").exists(),
            lambda: game.source(raw, videos, seed),
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


def submit_and_wait(command: list[str], env: dict[str, str]) -> bool:
    """`ray job submit` the command, following its logs; True once the job has SUCCEEDED.

    The client's log stream can drop while the job goes on (a busy dashboard closes the
    websocket): then the job's own status decides, not the client's exit code."""
    submission = f"demo-{command[2].removeprefix('jobs.')}-{secrets.token_hex(4)}"
    submit = ["ray", "job", "submit", "--submission-id", submission, "--working-dir", str(REPO),
              "--runtime-env-json", RUNTIME_ENV, "--", *command]  # fmt: skip
    if subprocess.run(submit, env=env, cwd=REPO).returncode == 0:
        return True
    while True:
        status = subprocess.run(["ray", "job", "status", submission], env=env, cwd=REPO,
                                capture_output=True, text=True)  # fmt: skip
        if status.returncode != 0:
            return False  # the job was never accepted
        for state in ("SUCCEEDED", "FAILED", "STOPPED"):
            if state in status.stdout:  # "Status for job '<id>': SUCCEEDED"
                print(f"   (log stream dropped; job {submission} {state})", flush=True)
                return state == "SUCCEEDED"
        time.sleep(10)


def platform_env() -> dict[str, str]:
    """The environment `make up` writes to .genie/env: where the cluster and MLflow are."""
    env = dict(os.environ)
    home = Path(os.environ.get("GENIE_HOME", REPO / ".genie"))
    for line in (home / "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.replace("$PATH", env.get("PATH", ""))
    return env


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    parser.add_argument(
        "--game",
        choices=sorted(GAMES),
        default="platformer",
        help="the built-in platformer or CoinRun (default platformer); also picks the training "
        "presets, jobs/configs/train/<demo|demo-coinrun>-<stage>.yaml",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="where the demo's data goes: raw/, curated/, runs/, tokenized/, eval/ (default "
        ".genie/demo, or .genie/demo-coinrun with --game coinrun); a DATA/raw/manifest.parquet "
        "already there is used as it is",
    )
    parser.add_argument(
        "--videos",
        type=int,
        default=None,
        help="gameplay videos to render or record (default "
        + ", ".join(f"{game.default_videos} {name}" for name, game in GAMES.items())
        + ")",
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    game = GAMES[args.game]
    videos = game.default_videos if args.videos is None else args.videos
    if videos < 1:
        build_parser(prog).error(f"--videos must be >= 1, got {videos}")
    suffix = "" if args.game == "platformer" else f"-{args.game}"
    data = (args.data or REPO / ".genie" / f"demo{suffix}").resolve()
    started = time.monotonic()
    print("== local platform: Ray head + MLflow server", flush=True)
    subprocess.run([sys.executable, str(LOCALCTL), "up"], check=True)
    env = platform_env()
    for number, step in enumerate(demo_steps(data, game, videos, args.seed), start=1):
        print(f"\n== [{number}] {step.name}", flush=True)
        if step.done():
            print("   already done, skipped (delete its output to redo it)")
            continue
        if not submit_and_wait(step.command(), env):
            print(f"\nstep failed: {step.name}. Its logs: the Ray dashboard's Jobs tab.")
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
    print(f"   motion by action: {data / 'eval' / 'motion_by_action.png'} (does each action move")
    print("                     the world the way the true frames it labels move?)")
    print(
        f"   play it:          genie play --clips {data / 'curated' / 'clips'} "
        f"--action-map {data / 'eval' / 'action_map.json'}"
    )
    print("   Stop the platform with `make down`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
