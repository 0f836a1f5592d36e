"""Near-copy pairs by locality-sensitive hashing, within one partition (no Ray)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipelines.curation.near_copies import edges_of_partition, table_rows


def clip_rows(hashes: np.ndarray, resolution: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "phash": pa.array([h.tobytes() for h in hashes], pa.binary(32)),
            "resolution": pa.array(resolution, pa.float32()),
            "source_index": pa.array(np.arange(len(hashes))),
            "start_s": pa.array(np.zeros(len(hashes))),
            "row": pa.array(np.arange(len(hashes), dtype=np.int32)),
        }
    )


def test_every_near_copy_is_one_edge_to_its_better_copy_and_unrelated_clips_none():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, (600, 32), dtype=np.uint8)
    flipped = rng.integers(1, 13, 100)  # 1-12 bits: found with probability 0.99999
    bits = np.unpackbits(hashes[:100], axis=1)
    for row, count in zip(bits, flipped, strict=True):
        row[rng.choice(256, count, replace=False)] ^= 1
    hashes[500:] = np.packbits(bits, axis=1)
    resolution = np.full(600, 90.0)
    resolution[500:] = 180.0  # the copies come from a sharper source: they are kept
    edges = edges_of_partition(table_rows(clip_rows(hashes, resolution), 0, 1)).to_pydict()
    pairs = sorted(zip(edges["later_row"], edges["earlier_row"], edges["bits"], strict=True))
    assert pairs == [(i, 500 + i, flipped[i]) for i in range(100)]  # once each


def test_a_clip_without_a_hash_takes_no_part():
    hashes = np.zeros((3, 32), np.uint8)
    table = clip_rows(hashes, np.full(3, 90.0))
    table = table.set_column(0, "phash", pa.array([hashes[0].tobytes(), None, None], pa.binary(32)))
    assert len(edges_of_partition(table_rows(table, 0, 1))) == 0
