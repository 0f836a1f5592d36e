"""Near-copy pairs by locality-sensitive hashing, within one partition (no Ray)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipelines.curation.filters.duplicate import table_bits
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


def test_a_key_crowded_in_one_table_does_not_hide_a_pair_other_tables_find():
    """16 unrelated clips share one table's key with a clip and its copy and sit between them
    in keeping order: that table's lookback never reaches the copy; the other tables do."""
    rng = np.random.default_rng(1)
    crowded = table_bits()[0]
    original = rng.integers(0, 256, 32, dtype=np.uint8)
    crowd = rng.integers(0, 256, (16, 32), dtype=np.uint8)
    crowd_bits = np.unpackbits(crowd, axis=1)
    crowd_bits[:, crowded] = np.unpackbits(original)[crowded]
    copy_bits = np.unpackbits(original)
    outside = np.setdiff1d(np.arange(256), crowded)
    copy_bits[rng.choice(outside, 4, replace=False)] ^= 1
    hashes = np.concatenate([[original], np.packbits(crowd_bits, axis=1), [np.packbits(copy_bits)]])
    edges = edges_of_partition(table_rows(clip_rows(hashes, np.full(18, 90.0)), 0, 1)).to_pydict()
    pairs = set(zip(edges["later_row"], edges["earlier_row"], edges["bits"], strict=True))
    assert (17, 0, 4) in pairs
