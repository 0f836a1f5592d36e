"""Play a trained world in the browser: `genie play` deploys the play server (a Ray Serve
application, jobs/serving/app.py) on the connected Ray cluster and serves its web page.

Pick a prompt (the first frame of a curated clip, or an uploaded PNG/JPEG) and play: hold the
game's keys (arrows, Space) where --action-map names the latent codes (genie eval writes
action_map.json), or keys 1..|A| for latent actions. Record a session as footage in the raw-video
layout (`genie curate run --source <record dir>/manifest.parquet` curates it), download it as
mp4. HTTP listens on 127.0.0.1 only and answers only requests addressed to a loopback name
(--allowed-host adds one); on a cluster, reach it with a port-forward.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import ray
from ray import serve

from jobs.common.parsers import command_parser
from jobs.common.tracking import tracking_uri
from jobs.serving.app import (
    APP_NAME,
    PlayConfig,
    curated_prompts,
    default_record_dir,
    start_play_server,
)
from jobs.serving.controls import ActionMapError, load_action_map
from jobs.serving.sessions import PlayLimits
from jobs.serving.world import add_world_arguments, check_world_arguments, world_files
from models.checkpoint import read_info

EPILOG = """\
examples:
  genie play                                     # models genie-*@latest-tiny, http://127.0.0.1:8000/
  genie play --clips /data/curated/clips --port 8080
  genie play --tokenizer tok/model.pt --dynamics dyn/model.pt --maskgit-steps 25 --confident 1
  genie play --clips data/curated/clips --action-map data/eval/action_map.json
  ray job submit --working-dir . -- python -m jobs.play --clips ...   # then port-forward 8000
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
    add_world_arguments(parser)
    parser.add_argument("--clips", help="curated clips (Parquet folder): their first frames")
    parser.add_argument("--prompts", type=int, default=12, help="how many curated prompts")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port on 127.0.0.1")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of every session")
    parser.add_argument(
        "--action-map",
        help="action_map.json from genie eval: the game's controls for the latent codes "
        "(default: latent buttons 1..|A|)",
    )
    parser.add_argument(
        "--record-dir",
        default=str(default_record_dir()),
        help="where recorded sessions go (default: %(default)s); '' turns recording off",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="a host name to answer besides 127.0.0.1, localhost and [::1] (repeatable)",
    )
    parser.add_argument("--max-sessions", type=int, default=PlayLimits.max_sessions)
    parser.add_argument("--max-upload-mb", type=float, default=PlayLimits.max_upload_bytes / 2**20)
    parser.add_argument("--cpus", type=int, default=1, help="CPU threads of the replica")
    parser.add_argument("--mlflow-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    check_world_arguments(parser, args)
    for name in ("prompts", "max_sessions", "cpus"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    if args.max_upload_mb <= 0:
        parser.error(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if args.clips and not Path(args.clips).exists() and "://" not in args.clips:
        parser.error(f"--clips: {args.clips} does not exist")

    mlflow_uri = tracking_uri(args.mlflow_uri)
    try:  # models that belong together, found before anything starts; the replica loads them
        files = world_files(args.tokenizer, args.dynamics, mlflow_uri)
    except ValueError as error:
        parser.error(str(error))
    action_map = None
    if args.action_map:
        num_actions = read_info(files["dynamics"][1])["config"]["num_actions"]
        try:
            action_map = load_action_map(args.action_map, num_actions)
        except ActionMapError as error:
            parser.error(str(error))

    prompts = curated_prompts(args.clips, args.prompts) if args.clips else {}
    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    limits = PlayLimits(
        max_sessions=args.max_sessions, max_upload_bytes=int(args.max_upload_mb * 2**20)
    )
    config = PlayConfig(
        maskgit_steps=args.maskgit_steps,
        confident=args.confident,
        decode_context=args.decode_context,
        seed=args.seed,
        limits=limits,
        allowed_hosts=tuple(args.allowed_host),
        record_dir=str(Path(args.record_dir).resolve()) if args.record_dir else "",
        action_map=action_map,
        cpus=args.cpus,
    )
    tokenizer, dynamics = files["tokenizer"][0], files["dynamics"][0]  # run ids or paths
    url = start_play_server(
        tokenizer, dynamics, prompts, port=args.port, config=config, mlflow_uri=mlflow_uri
    )
    controls = "named controls" if action_map else "latent buttons"
    recording = f"recordings to {config.record_dir}" if config.record_dir else "recording off"
    print(
        f"genie play: open {url}  ({len(prompts)} curated prompts, {controls}, {recording}; "
        "Ctrl-C stops)",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.delete(APP_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
