"""Turn curated clips into token shards for the dynamics stage.

A Ray Data actor pool holds the trained tokenizer and LAM (a GPU each when the cluster has
GPUs); every kept clip becomes one row: its token grid, its latent actions, and the run ids of
the two models (lineage). Models are named as `genie-tokenizer@latest-tiny` (registered model
and alias) or by MLflow run id. A finished output (its _SUCCESS marker) is not redone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EPILOG = """\
examples:
  genie tokenize --clips /data/curated/clips --out /data/tokenized   # shards: /data/tokenized/tokens
  genie tokenize --clips ... --out ... --tokenizer <run id> --lam genie-lam@latest-tiny --actors 4
  ray job submit --working-dir . -- python -m jobs.tokenize --clips ... --out ...
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", required=True, help="curated clips (Parquet folder)")
    parser.add_argument(
        "--out", required=True, help="output root: shards go to OUT/tokens/, plus OUT/summary.json"
    )
    parser.add_argument(
        "--tokenizer",
        default="genie-tokenizer@latest-tiny",
        help="registered model@alias or run id",
    )
    parser.add_argument(
        "--lam", default="genie-lam@latest-tiny", help="registered model@alias or run id"
    )
    parser.add_argument(
        "--window", type=int, default=16, help="frames encoded together (the training window)"
    )
    parser.add_argument(
        "--actors", type=int, default=1, help="actors holding the models (default 1)"
    )
    parser.add_argument("--mlflow-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.window < 2:
        parser.error(f"--window must be >= 2, got {args.window}")
    if args.actors < 1:
        parser.error(f"--actors must be >= 1, got {args.actors}")
    if not Path(args.clips).exists() and "://" not in args.clips:
        parser.error(f"--clips: {args.clips} does not exist")
    out = Path(args.out)
    if (out / "_SUCCESS").exists():
        print(f"{out} is complete already ({out / '_SUCCESS'}); delete it to redo")
        return 0

    import pyarrow.dataset as pads
    import ray
    import ray.data

    from jobs.common.tracking import resolve_model
    from pipelines.tokenize import ClipTokenizer
    from pipelines.training_data import read_kept

    tokenizer_run, tokenizer_path = resolve_model(args.tokenizer, args.mlflow_uri)
    lam_run, lam_path = resolve_model(args.lam, args.mlflow_uri)
    print(f"tokenizer run {tokenizer_run}, LAM run {lam_run}", flush=True)
    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    started = time.monotonic()
    clips = read_kept(args.clips, ["clip_id", "video"])
    files = len(pads.dataset(args.clips, format="parquet").files)
    if files < 2 * args.actors:  # a block goes to one actor: a single small file would too
        clips = clips.repartition(2 * args.actors)
    tokens = clips.map_batches(
        ClipTokenizer,
        fn_constructor_args=(
            str(tokenizer_path),
            str(lam_path),
            (tokenizer_run, lam_run),
            args.window,
        ),
        batch_size=4,
        concurrency=args.actors,
        num_gpus=gpus,
    )
    tokens.write_parquet(str(out / "tokens"))
    rows = ray.data.read_parquet(str(out / "tokens"), columns=["clip_id"]).count()
    summary = {
        "clips_tokenized": rows,
        "tokenizer_run_id": tokenizer_run,
        "lam_run_id": lam_run,
        "seconds": round(time.monotonic() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "_SUCCESS").write_text("")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
