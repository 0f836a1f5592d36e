"""Near-copy search at growing input: time, the largest partition a task holds and the peak
memory of the tasks, at 1x and 4x (and more) scored clips, side by side in one run.

The scored data is synthetic (no video: random 256-bit hashes, one clip in `--copy-every` given
near copies 1-15 bits away in other shards, each shard committed as `genie curate score` does)
so the figures are those of the search alone. Select's time over the same data, with only the
duplicate condition, is reported beside it: re-thresholding reads the stored pairs only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.common.parsers import command_parser
from pipelines.curation.conditions import Selection, parse_where
from pipelines.curation.near_copies import ROWS_PER_PARTITION, find_near_copies
from pipelines.curation.selection import Selector
from pipelines.curation.store import SPEC, ScoredStore, write_output
from pipelines.schemas import SCORED_SCHEMA

EPILOG = """\
examples:
  python -m jobs.bench curate --dedup                        # 100k and 400k clips
  python -m jobs.benchmarks.curate_dedup --clips 50000 --scales 1 4 16 --json dedup.json
"""


def synthetic_scored(
    out: Path,
    clips: int,
    copy_every: int = 50,
    shard_rows: int = 8000,
    seed: int = 0,
    max_bits: int = 15,
) -> dict[str, int]:
    """Committed scored shards of `clips` clips (no video) under `out`. Every `copy_every`-th
    clip of the first half gets one near copy (1 to `max_bits` random bits flipped, a lower
    resolution) in the second half. Returns {"clips", "copies"}."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 256, (clips, 32), dtype=np.uint8)
    resolution = np.full(clips, 180.0, np.float32)
    originals = np.arange(0, clips // 2, copy_every)
    copies = clips // 2 + originals
    bits = np.unpackbits(hashes[originals], axis=1)
    for row in bits:
        row[rng.choice(256, rng.integers(1, max_bits + 1), replace=False)] ^= 1
    hashes[copies] = np.packbits(bits, axis=1)
    resolution[copies] = 90.0
    store = ScoredStore(str(out))
    write_output(str(out), f"scored/{SPEC}", {"synthetic": True})
    for number, start in enumerate(range(0, clips, shard_rows)):
        stop = min(clips, start + shard_rows)
        count = stop - start
        columns: dict[str, Any] = {name: pa.nulls(count, f.type) for name, f in
                                   zip(SCORED_SCHEMA.names, SCORED_SCHEMA, strict=True)}  # fmt: skip
        ids = [f"clip-{i:09d}" for i in range(start, stop)]
        columns.update(
            kind=pa.array(["clip"] * count),
            clip_id=pa.array(ids),
            source_uri=pa.array([f"synthetic://{i}" for i in range(start, stop)]),
            source_id=pa.array(ids),
            source_index=pa.array(np.arange(start, stop)),
            start_s=pa.array(np.zeros(count)),
            resolution=pa.array(resolution[start:stop]),
            phash=pa.array([h.tobytes() for h in hashes[start:stop]], pa.binary(32)),
        )
        staging = f"{store.root}/_staging/synthetic/{number}"
        store.fs.create_dir(staging, recursive=True)
        pq.write_table(pa.table(columns, schema=SCORED_SCHEMA), f"{staging}/part.parquet")
        store.commit(f"synthetic{number:05d}", [], staging)
    return {"clips": clips, "copies": len(copies)}


def measure(workdir: Path, clips: int, rows_per_partition: int, copy_every: int) -> dict:
    """Write `clips` synthetic clips, search them, select on the duplicate condition only."""
    out = workdir / f"clips-{clips}"
    made = synthetic_scored(out, clips, copy_every)
    marker = find_near_copies(str(out), rows_per_partition, progress=lambda _: None)
    started = time.monotonic()
    result = Selector(
        str(out), Selection.of(parse_where("duplicate >= 16"), with_quality=False)
    ).run(progress=lambda _: None)
    return {
        **made,
        **{k: v for k, v in marker.items() if k not in ("shards", "shard_rows", "tables")},
        "shards": len(marker["shards"]),
        "select_s": round(time.monotonic() - started, 2),
        "rejected_as_duplicate": result["clips"]["reject_reasons"].get("duplicate", 0),
    }


def run(argv: list[str]) -> int:
    import ray

    parser = command_parser("python -m jobs.benchmarks.curate_dedup", __doc__, EPILOG)
    parser.add_argument("--workdir", default=".genie/bench/curate-dedup")
    parser.add_argument("--clips", type=int, default=100_000, help="clips at 1x")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rows-per-partition", type=int, default=ROWS_PER_PARTITION)
    parser.add_argument("--copy-every", type=int, default=50)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the benchmark's own Ray")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR")
    rows = []
    for scale in args.scales:
        figures = measure(workdir, args.clips * scale, args.rows_per_partition, args.copy_every)
        rows.append({"scale": scale, **figures})
    ray.shutdown()
    base = rows[0]
    print("\n| input | clips | buckets | largest bucket (table rows, MB) | task peak USS MB "
          "| stored pairs | copies found (planted) | search s | select s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['scale']}x | {row['clips']:,} | {row['partitions']} | "
              f"{row['largest_bucket_rows']:,}, {row['largest_bucket_mb']:.1f} "
              f"({row['largest_bucket_mb'] / base['largest_bucket_mb']:.2f}x) | "
              f"{row['worker_uss_mb']:.0f} ({row['worker_uss_mb'] / base['worker_uss_mb']:.2f}x) "
              f"| {row['edges']:,} | {row['rejected_as_duplicate']:,} ({row['copies']:,}) | "
              f"{row['seconds']} | {row['select_s']} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0
