"""Play a trained world in the browser: `genie play` deploys the play server (a Ray Serve
application, jobs/serving/app.py) on the connected Ray cluster and serves its web page.

Pick a prompt (the first frame of a curated clip, or an uploaded PNG/JPEG), press keys 1..|A|
to take actions, download the session as mp4. HTTP listens on 127.0.0.1 only; on a cluster,
reach it with a port-forward.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import ray
from ray import serve

from jobs.common.tracking import tracking_uri
from jobs.serving.app import APP_NAME, PlayLimits, curated_prompts, start_play_server
from jobs.serving.world import add_world_arguments

EPILOG = """\
examples:
  genie play                                     # models genie-*@latest-tiny, http://127.0.0.1:8000/
  genie play --clips /data/curated/clips --port 8080
  genie play --tokenizer tok/model.pt --dynamics dyn/model.pt --maskgit-steps 8
  ray job submit --working-dir . -- python -m jobs.play --clips ...   # then port-forward 8000
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_world_arguments(parser)
    parser.add_argument("--clips", help="curated clips (Parquet folder): their first frames")
    parser.add_argument("--prompts", type=int, default=12, help="how many curated prompts")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port on 127.0.0.1")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of every session")
    parser.add_argument("--max-sessions", type=int, default=PlayLimits.max_sessions)
    parser.add_argument("--max-upload-mb", type=float, default=PlayLimits.max_upload_bytes / 2**20)
    parser.add_argument("--cpus", type=int, default=1, help="CPU threads of the replica")
    parser.add_argument("--mlflow-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    for name in ("prompts", "maskgit_steps", "max_sessions", "cpus"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    if args.max_upload_mb <= 0:
        parser.error(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if args.clips and not Path(args.clips).exists() and "://" not in args.clips:
        parser.error(f"--clips: {args.clips} does not exist")

    prompts = curated_prompts(args.clips, args.prompts) if args.clips else {}
    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    limits = PlayLimits(
        max_sessions=args.max_sessions, max_upload_bytes=int(args.max_upload_mb * 2**20)
    )
    url = start_play_server(
        args.tokenizer,
        args.dynamics,
        prompts,
        port=args.port,
        maskgit_steps=args.maskgit_steps,
        seed=args.seed,
        limits=limits,
        mlflow_uri=tracking_uri(args.mlflow_uri),
        cpus=args.cpus,
    )
    print(f"genie play: open {url}  ({len(prompts)} curated prompts; Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.delete(APP_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
