"""Near-copy pairs by perceptual-hash banding, within one partition (no Ray)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipelines.curation.filters.duplicate import BANDS
from pipelines.curation.near_copies import bands_of, edges_of_partition


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


def test_every_near_copy_within_the_band_guarantee_is_one_edge_to_its_better_copy():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, (450, 32), dtype=np.uint8)
    bits = np.unpackbits(hashes[:50], axis=1)
    for row in bits:  # flip BANDS - 1 random bits: still guaranteed to share a band
        row[rng.choice(256, BANDS - 1, replace=False)] ^= 1
    hashes[400:] = np.packbits(bits, axis=1)
    resolution = np.full(450, 90.0)
    resolution[400:] = 180.0  # the copies come from a sharper source: they are kept
    edges = edges_of_partition(bands_of(clip_rows(hashes, resolution), 0, 1)).to_pydict()
    pairs = sorted(zip(edges["later_row"], edges["earlier_row"], edges["bits"], strict=True))
    assert pairs == [(i, 400 + i, BANDS - 1) for i in range(50)]  # once each, no random pair


def test_a_clip_without_a_hash_takes_no_part():
    hashes = np.zeros((3, 32), np.uint8)
    table = clip_rows(hashes, np.full(3, 90.0))
    table = table.set_column(0, "phash", pa.array([hashes[0].tobytes(), None, None], pa.binary(32)))
    assert len(edges_of_partition(bands_of(table, 0, 1))) == 0
