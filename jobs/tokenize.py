"""Turn curated clips into token shards for the dynamics stage.

A Ray Data actor pool holds the trained tokenizer and LAM (a GPU each when the cluster has
GPUs); every kept clip becomes one row: its token grid, its latent actions, and the run ids of
the two models (lineage). Models are named as `genie-tokenizer@latest-tiny` (registered model
and alias) or by MLflow run id. A finished output (its _SUCCESS marker) is not redone. Paths
are local or object-store URIs (s3://...); the actors read the models from where training
wrote them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from jobs.common.parsers import command_parser
from pipelines import storage

EPILOG = """\
examples:
  genie tokenize --clips /data/curated/clips --out /data/tokenized   # shards: /data/tokenized/tokens
  genie tokenize --clips ... --out ... --tokenizer <run id> --lam genie-lam@latest-tiny --actors 4
  ray job submit --working-dir . -- python -m jobs.tokenize --clips ... --out ...
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = command_parser(prog, __doc__, EPILOG)
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
    try:
        clips = storage.resolve(args.clips, "--clips")
        out = storage.resolve(args.out, "--out")
    except storage.StoragePathError as error:
        parser.error(str(error))
    if not storage.exists(clips):
        parser.error(f"--clips: {clips} does not exist")
    if storage.is_file(out):
        parser.error(f"--out: {out} is a file; give a folder")
    done = storage.join(out, "_SUCCESS")
    if storage.exists(done):
        print(f"{out} is complete already ({done}); delete it to redo")
        return 0

    import pyarrow.dataset as pads
    import ray
    import ray.data
    from mlflow.exceptions import MlflowException

    from jobs.common.tracking import model_info, model_uri
    from models.checkpoint import check_frames
    from pipelines.tokenize import ClipTokenizer
    from pipelines.training_data import read_kept, split_columns

    try:  # before any work: two models that exist and read the same frames
        tokenizer_run, tokenizer_weights = model_uri(args.tokenizer, args.mlflow_uri)
        lam_run, lam_weights = model_uri(args.lam, args.mlflow_uri)
        check_frames(model_info(tokenizer_weights), model_info(lam_weights),
                     (f"--tokenizer {args.tokenizer} (run {tokenizer_run})",
                      f"--lam {args.lam} (run {lam_run})"))  # fmt: skip
    except (ValueError, MlflowException) as error:
        parser.error(str(error))
    print(f"tokenizer run {tokenizer_run}, LAM run {lam_run}", flush=True)
    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    started = time.monotonic()
    fs, clips_path = storage.filesystem(clips)
    files = len(pads.dataset(clips_path, filesystem=fs, format="parquet").files)
    rows = read_kept(clips, [*split_columns(clips), "video"])
    if files < 2 * args.actors:  # a block goes to one actor: a single small file would too
        rows = rows.repartition(2 * args.actors)
    tokens = rows.map_batches(
        ClipTokenizer,
        fn_constructor_args=(tokenizer_weights, lam_weights, (tokenizer_run, lam_run), args.window),
        batch_size=4,
        concurrency=args.actors,
        num_gpus=gpus,
    )
    shards = storage.join(out, "tokens")
    tokens.write_parquet(shards)
    count = ray.data.read_parquet(shards, columns=["clip_id"]).count()
    summary = {
        "clips_tokenized": count,
        "tokenizer_run_id": tokenizer_run,
        "lam_run_id": lam_run,
        "seconds": round(time.monotonic() - started, 1),
    }
    storage.write_json(storage.join(out, "summary.json"), summary)
    storage.write_bytes(done, b"")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
