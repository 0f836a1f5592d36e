"""Near-duplicate search by perceptual-hash banding."""

from __future__ import annotations

import numpy as np

from pipelines.curation.filters.duplicate import BANDS, copy_rank, distance_to_earlier


def test_duplicate_search_finds_every_near_copy_within_the_band_guarantee():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, (400, 32), dtype=np.uint8)
    copies = hashes[:50].copy()
    bits = np.unpackbits(copies, axis=1)
    for row in bits:  # flip BANDS - 1 random bits: still guaranteed to share a band
        row[rng.choice(256, BANDS - 1, replace=False)] ^= 1
    allh = np.concatenate([hashes, np.packbits(bits, axis=1)])
    rank = copy_rank(np.full(450, 90.0), np.arange(450), np.zeros(450))
    distances = distance_to_earlier(allh, rank)
    assert (distances[400:] == BANDS - 1).all()
    assert (distances[:400] > 64).all()  # random hashes are ~128 bits apart
