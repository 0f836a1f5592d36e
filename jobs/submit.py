"""Submit a job to the Ray cluster as you would run it here: `genie submit -- <command>`.

A bare `ray job submit --working-dir . -- python -m jobs.X --out data/x` runs the job in Ray's
unpacked copy of the repository, so relative paths land inside that copy (and vanish with it),
`data/` and caches are uploaded with the code, and files outside the repository (the FVD
weights) are not there. This wrapper submits the same command with:
- the submitting folder as `$GENIE_SUBMIT_DIR`: every job resolves a relative path against it
  (pipelines/storage.py), so `--out data/x` means ./data/x here, as typed; on a remote cluster
  use paths every node sees (s3://... or a shared mount);
- the repository as the working dir, without data, caches, virtualenvs or videos;
- `$GENIE_I3D_WEIGHTS` pointing at the FVD weights where this machine has them (a path the
  cluster must see too; `genie eval` fails naming the path where it does not);
- any `--env KEY=VALUE` (or `--env KEY`, this environment's value) for the job's processes,
  e.g. an object store's endpoint.
Then it runs `ray job submit` (which follows the job's logs and returns its exit code).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from jobs.common.parsers import command_parser
from pipelines.storage import SUBMIT_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
# Never uploaded with the code: data, caches, environments, media and model files.
EXCLUDES = [".git", ".venv", ".genie", "data", "mlruns", "__pycache__", "*.mp4", "*.parquet",
            "*.pt", "*.distcp"]  # fmt: skip

EPILOG = """\
examples:
  genie submit -- python -m jobs.curate run --source data/raw --out data/curated
  genie submit --env AWS_ENDPOINT_URL -- python -m jobs.train --stage tokenizer \\
      data=s3://genie/cur/clips storage_path=s3://genie/runs name=tok
  genie submit --no-wait -- python -m jobs.evaluate --clips data/curated/clips
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY[=VALUE]",
        help="an environment variable for the job (KEY alone: this environment's value)",
    )  # fmt: skip
    parser.add_argument("--no-wait", action="store_true", help="return once submitted")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the job's command")
    return parser


def runtime_env(env: list[str], submit_dir: str) -> dict:
    """The runtime_env of a submitted job (see the module docstring)."""
    from models.i3d import weights_path

    variables = {SUBMIT_DIR_ENV: submit_dir}
    weights = weights_path()
    if weights.is_file():
        variables["GENIE_I3D_WEIGHTS"] = str(weights.resolve())
    for item in env:
        key, sep, value = item.partition("=")
        if not sep:
            if key not in os.environ:
                raise ValueError(f"--env {key}: not set in this environment")
            value = os.environ[key]
        variables[key] = value
    return {"working_dir": str(REPO), "excludes": EXCLUDES, "env_vars": variables}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the job's command after --, e.g. -- python -m jobs.train ...")
    try:
        env = runtime_env(args.env, os.getcwd())
    except ValueError as error:
        parser.error(str(error))
    submit = ["ray", "job", "submit", "--runtime-env-json", json.dumps(env)]
    if args.no_wait:
        submit.append("--no-wait")
    return subprocess.run([*submit, "--", *command]).returncode


if __name__ == "__main__":
    sys.exit(main())
