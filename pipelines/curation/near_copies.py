"""Near copies across the whole scored dataset, found on Ray Data with memory per task flat in
the dataset size.

Each clip gives one row per LSH table (filters/duplicate.py: TABLES keys of TABLE_BITS fixed
bits of its 256-bit hash). The rows are grouped by a hash of (table, key) into buckets whose
number grows with the dataset, `rows_per_partition` rows each on average; Ray's hash shuffle
puts a few buckets in one task (the fullest of P tasks holds ~ln P / ln ln P of them), so what a
task holds grows with the logarithm of the dataset at most. Inside a bucket each clip is
compared with the clips ranked just before it that share its key, at most LOOKBACK of them,
which bounds the work where many clips share a key (thousands of copies of one title screen).
Every pair within MAX_BITS is written as an edge: the later clip, the earlier one (in keeping
order, `copy_rank_keys`) and their distance; a pair that shares several tables is written from
each bucket that compared it (select takes the minimum), so a crowded key in one table does
not hide a pair another table finds.

The lookback counts every scored clip, also those select will reject for other reasons: a
passing clip whose only passing copy is ranked behind LOOKBACK or more near-identical clips in
every table the two share keeps NO_NEIGHBOUR (the search before pairs were stored compared
passing clips only).

Select turns the edges into each clip's distance to the nearest earlier clip that passed every
other filter, reading only the edges, so re-thresholding never compares hashes again. The
edges live in `scored/_near_copies/`: one file per bucket (a retried task rewrites its own
file: nothing is duplicated), and `_done.json`, written last, names the shards they cover with
their row counts and the search's settings; `score` rebuilds them after its last wave whenever
those changed. A failed task fails the search (no marker), never a silent loss of pairs.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.curation.filters.duplicate import (
    LOOKBACK,
    MAX_BITS,
    NO_NEIGHBOUR,
    TABLES,
    copy_rank_keys,
    table_bits,
)
from pipelines.curation.store import SCORED, ScoredStore, read_output, read_scored
from pipelines.schemas import PHASH_BYTES
from pipelines.storage import filesystem

NEAR_COPIES = "_near_copies"
MARKER = "_done.json"
ROWS_PER_PARTITION = 250_000  # table rows a bucket holds on average (~18 MB of Arrow)
EDGE_SCHEMA = pa.schema(
    [
        pa.field("later_shard", pa.int32()),  # index into the marker's `shards`
        pa.field("later_row", pa.int32()),  # row of the clip in that shard file
        pa.field("earlier_shard", pa.int32()),
        pa.field("earlier_row", pa.int32()),
        pa.field("bits", pa.int16()),  # Hamming distance of the two 256-bit hashes
    ]
)


def hash_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column of 32-byte hashes without nulls -> (N, 32) uint8."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(array):
        return np.zeros((0, PHASH_BYTES), np.uint8)
    data = np.frombuffer(array.buffers()[1], np.uint8)
    start = array.offset * PHASH_BYTES
    return data[start : start + len(array) * PHASH_BYTES].reshape(-1, PHASH_BYTES)


def bucket_of(table: np.ndarray, key: np.ndarray, partitions: int) -> np.ndarray:
    """Partition of each (table, key): a fixed multiplicative hash, the same on every run."""
    mixed = (table.astype(np.uint64) << np.uint64(32)) | key.astype(np.uint64)
    mixed = (mixed * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
    return (mixed % np.uint64(partitions)).astype(np.int32)


def table_keys(hashes: np.ndarray) -> np.ndarray:
    """(N, 32) uint8 hashes -> (N, TABLES) int64: each table's key (its bits as a number)."""
    bits = np.unpackbits(hashes, axis=1)[:, table_bits()]  # (N, TABLES, TABLE_BITS)
    return (bits.astype(np.int64) << np.arange(bits.shape[-1], dtype=np.int64)).sum(axis=-1)


def shard_table_rows(batch: pa.Table, out: str, shards: list[str], partitions: int) -> pa.Table:
    """map_batches step: the shards named in `batch` -> one row per (clip, table)."""
    fs, _ = filesystem(out)
    columns = ["phash", "resolution", "source_index", "start_s"]
    tables = [
        table_rows(read_scored(fs, shards[shard], columns, "clip"), shard, partitions)
        for shard in batch.column("shard").to_pylist()
    ]
    return pa.concat_tables(tables) if tables else pa.table({})


def table_rows(clips: pa.Table, shard: int, partitions: int) -> pa.Table:
    """Clip rows (phash, resolution, source_index, start_s, row) of shard number `shard` -> one
    row per (clip, table) with the table's key and its partition; unhashed clips drop."""
    clips = clips.filter(clips.column("phash").is_valid())
    count = len(clips)
    table = np.tile(np.arange(TABLES, dtype=np.int32), count)
    key = table_keys(hash_matrix(clips.column("phash"))).ravel()
    return (
        clips.take(pa.array(np.repeat(np.arange(count), TABLES)))
        .append_column("shard", pa.array(np.full(count * TABLES, shard, np.int32)))
        .append_column("table", pa.array(table))
        .append_column("key", pa.array(key))
        .append_column("bucket", pa.array(bucket_of(table, key, partitions)))
    )


def edges_of_partition(rows: pa.Table) -> pa.Table:
    """Near-copy edges among one bucket's table rows (see the module docstring)."""
    order = np.lexsort(
        (
            *copy_rank_keys(
                _numbers(rows, "resolution"),
                _numbers(rows, "source_index"),
                _numbers(rows, "start_s"),
                _numbers(rows, "shard"),
                _numbers(rows, "row"),
            ),
            rows.column("key").to_numpy(),
            rows.column("table").to_numpy(),
        )
    )
    table = rows.column("table").to_numpy()[order]
    key = rows.column("key").to_numpy()[order]
    shard = rows.column("shard").to_numpy()[order]
    row = rows.column("row").to_numpy()[order]
    words = np.ascontiguousarray(hash_matrix(rows.column("phash"))[order]).view(np.uint64)
    found = []
    for lag in range(1, LOOKBACK + 1):
        same = (table[lag:] == table[:-lag]) & (key[lag:] == key[:-lag])
        if not same.any():
            break
        later = np.flatnonzero(same) + lag
        earlier = later - lag
        bits = np.bitwise_count(words[later] ^ words[earlier]).sum(axis=1)
        keep = bits <= MAX_BITS
        found.append((later[keep], earlier[keep], bits[keep]))
    later = np.concatenate([f[0] for f in found]) if found else np.zeros(0, np.int64)
    earlier = np.concatenate([f[1] for f in found]) if found else np.zeros(0, np.int64)
    bits = np.concatenate([f[2] for f in found]) if found else np.zeros(0, np.int64)
    # a pair that shares several tables of this partition is stored once from it
    pairs = np.stack([shard[later], row[later], shard[earlier], row[earlier]], axis=1)
    _, first = np.unique(pairs, axis=0, return_index=True)
    later, earlier, bits = later[first], earlier[first], bits[first]
    return pa.table(
        [shard[later], row[later], shard[earlier], row[earlier], bits.astype(np.int16)],
        schema=EDGE_SCHEMA,
    )


def write_partition(rows: pa.Table, folder: str, out: str) -> pa.Table:
    """map_groups step: one bucket's edges to `folder/part-<bucket>.parquet`; returns a row of
    what the call held (rows, Arrow bytes) and its process's unique memory after it."""
    bucket = int(rows.column("bucket")[0].as_py())
    edges = edges_of_partition(rows)
    fs, _ = filesystem(out)
    if len(edges):
        pq.write_table(edges, f"{folder}/part-{bucket:05d}.parquet", filesystem=fs)
    return pa.table(
        {
            "bucket": [bucket],
            "rows": [len(rows)],
            "arrow_mb": [rows.nbytes / 2**20],
            "edges": [len(edges)],
            "worker_uss_mb": [_unique_memory_mb()],
        }
    )


def find_near_copies(
    out: str,
    rows_per_partition: int = ROWS_PER_PARTITION,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Rebuild `scored/_near_copies/` over every committed shard of `out`; returns its marker
    (settings, shards covered, edges, buckets, the largest bucket and worker memory, seconds).
    With one bucket the work is done here, without starting a dataset (~2.5 s on 2 cores)."""
    import ray.data

    started = time.monotonic()
    store = ScoredStore(out, create=False)
    shards = store.committed_files()
    folder = f"{store.root}/{NEAR_COPIES}"
    if store.fs.get_file_info(f"{folder}/{MARKER}").type != pafs.FileType.NotFound:
        store.fs.delete_file(f"{folder}/{MARKER}")  # first: half-rebuilt pairs are never current
    store.fs.delete_dir_contents(folder, missing_dir_ok=True)
    store.fs.create_dir(folder, recursive=True)
    rows_by_shard = rows_of_shards(store.fs, shards)
    partitions = max(1, math.ceil(sum(rows_by_shard) * TABLES / rows_per_partition))
    stats = pa.table({"rows": pa.array([], pa.int64())})
    if partitions == 1 and shards:  # it all fits one task: this process, no dataset to start
        rows = shard_table_rows(pa.table({"shard": range(len(shards))}), out, shards, 1)
        stats = write_partition(rows, folder, out) if len(rows) else stats
    elif shards:
        context = ray.data.DataContext.get_current()
        tolerated, context.max_errored_blocks = context.max_errored_blocks, 0
        try:  # a lost shard or partition would lose pairs in silence: fail instead
            rows = ray.data.from_items(
                [{"shard": i} for i in range(len(shards))], override_num_blocks=len(shards)
            ).map_batches(
                shard_table_rows,
                batch_size=1,
                batch_format="pyarrow",
                fn_kwargs={"out": out, "shards": shards, "partitions": partitions},
            )
            stats = (
                rows.groupby("bucket", num_partitions=partitions)
                .map_groups(
                    write_partition,
                    batch_format="pyarrow",
                    fn_kwargs={"folder": folder, "out": out},
                )
                .to_arrow_refs()
            )
            stats = pa.concat_tables(ray.get(stats)) if stats else pa.table({"rows": []})
        finally:
            context.max_errored_blocks = tolerated
    marker = {
        **search_settings(),
        "shards": [path.rsplit("/", 1)[1] for path in shards],
        "shard_rows": rows_by_shard,
        "edges": _total(stats, "edges"),
        "partitions": partitions,
        "table_rows": _total(stats, "rows"),
        "largest_bucket_rows": int(_largest(stats, "rows")),
        "largest_bucket_mb": round(_largest(stats, "arrow_mb"), 3),
        "worker_uss_mb": round(_largest(stats, "worker_uss_mb"), 1),
        "seconds": round(time.monotonic() - started, 2),
    }
    temporary = f"{folder}/.{MARKER}.tmp"
    with store.fs.open_output_stream(temporary) as handle:
        handle.write(json.dumps(marker, indent=2).encode())
    store.fs.move(temporary, f"{folder}/{MARKER}")
    progress(
        f"[near copies] {marker['edges']} pairs stored over {len(shards)} shards, {partitions} "
        f"partitions, buckets of at most {marker['largest_bucket_rows']} table rows, "
        f"{marker['seconds']} s"
    )
    return marker


def search_settings() -> dict[str, Any]:
    """What fixes the stored pairs besides the shards: pairs made otherwise are not current."""
    return {"tables": table_bits().tolist(), "lookback": LOOKBACK, "max_bits": MAX_BITS}


def near_copies_marker(out: str) -> dict[str, Any] | None:
    """The marker of the stored pairs; None when missing or unreadable (then they are stale)."""
    try:
        return read_output(out, f"{SCORED}/{NEAR_COPIES}/{MARKER}")
    except ValueError:  # cut short while written by a run that was killed
        return None


def rows_of_shards(fs: pafs.FileSystem, shards: list[str]) -> list[int]:
    """Rows of each scored shard file, from its Parquet footer."""
    return [pq.read_metadata(path, filesystem=fs).num_rows for path in shards]


def is_current(marker: dict[str, Any] | None, shards: list[str], rows: list[int]) -> bool:
    """Whether the pairs a `marker` describes were made by these settings over exactly the
    committed shards `shards` (paths, in commit order), each with `rows` rows now."""
    if marker is None or any(marker.get(k) != v for k, v in search_settings().items()):
        return False
    names = [path.rsplit("/", 1)[1] for path in shards]
    return marker["shards"] == names and marker.get("shard_rows") == list(rows)


def nearest_earlier(
    out: str, passing: dict[str, np.ndarray], rows: dict[str, int]
) -> tuple[dict[str, np.ndarray], int]:
    """Per shard path, the distance of each file row to its nearest near copy ranked before it
    among the `passing` rows (row indices per shard path; NO_NEIGHBOUR where none), and the
    number of stored pairs read.

    `rows` gives each shard's row count. Memory: one byte and one float per scored row, plus one
    edge file at a time."""
    marker = near_copies_marker(out)
    paths = sorted(passing)
    if not is_current(marker, paths, [rows[path] for path in paths]):
        raise FileNotFoundError(
            f"select: the near copies of {out} are missing or older than its scored shards: run "
            f"`genie curate score --out {out}` with the same --source again (nothing is decoded "
            f"again) or leave out the duplicate condition"
        )
    offsets = np.concatenate([[0], np.cumsum([rows[path] for path in paths])]).astype(np.int64)
    ok = np.zeros(offsets[-1], bool)
    for path, start in zip(paths, offsets, strict=False):
        ok[start + passing[path]] = True
    distance = np.full(offsets[-1], NO_NEIGHBOUR, np.float64)
    fs, root = filesystem(out)
    folder = f"{root.rstrip('/')}/{SCORED}/{NEAR_COPIES}"
    for info in fs.get_file_info(pafs.FileSelector(folder)):
        if not info.base_name.startswith("part-"):
            continue
        edges = pq.read_table(info.path, filesystem=fs)
        later = offsets[_indices(edges, "later_shard")] + _indices(edges, "later_row")
        earlier = offsets[_indices(edges, "earlier_shard")] + _indices(edges, "earlier_row")
        both = ok[later] & ok[earlier]
        np.minimum.at(distance, later[both], _numbers(edges, "bits")[both])
    by_shard = {path: distance[start : start + rows[path]] for path, start in zip(paths, offsets,
                                                                                   strict=False)}  # fmt: skip
    return by_shard, marker["edges"]


def _indices(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy().astype(np.int64)


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def _total(stats: pa.Table, name: str) -> int:
    return int(pc.sum(stats.column(name)).as_py() or 0) if name in stats.column_names else 0


def _largest(stats: pa.Table, name: str) -> float:
    return float(pc.max(stats.column(name)).as_py() or 0) if name in stats.column_names else 0.0


def _unique_memory_mb() -> float:
    """This process's resident memory not shared with others (RSS minus shared pages), in MB."""
    with open(f"/proc/{os.getpid()}/statm") as handle:
        _, resident, shared, *_ = (int(x) for x in handle.read().split())
    return (resident - shared) * os.sysconf("SC_PAGE_SIZE") / 2**20
