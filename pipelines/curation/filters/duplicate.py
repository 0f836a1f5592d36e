"""On-screen duplicates: the same footage uploaded twice, re-encoded, or resized. Near-duplicate
clips over-weight what they show and leak between training and held-out data.

Every clip gets a 256-bit perceptual hash while scoring: for four frames (one per quarter of
the clip), the signs of its 63 lowest-frequency DCT coefficients against their median (pHash),
which survives re-encoding and rescaling (a 2x-smaller crf-30 copy is ~10 bits away, different
footage ~128). A clip's score is the smallest Hamming distance to a clip ranked before it among
the clips that passed every other filter. The rank prefers the copy from the higher-resolution
source, then the one listed first (the original before its re-upload, in a manifest's order),
so the best copy is kept and the others go.

Candidate pairs are found once per scored dataset on Ray Data (pipelines/curation/near_copies.py)
by locality-sensitive hashing: TABLES tables, each keyed by TABLE_BITS fixed bit positions of
the hash (never the last bit of a frame's 64, which is always 0); two clips are compared when
they agree on every bit of some table. A pair d random bits apart agrees on a given table with
probability ~(1 - d/256)^24; over these 32 tables (which overlap) it is found with probability
1.0 up to 10 bits, 0.99998 at 12 and 0.9997 at 15 (200,000 random draws each), and unrelated
clips (~128 bits apart) share a key once in 2^24. Real pHash bits are not independent (a still clip
repeats one frame's bits four times), so keys are shared more often than that; the lookback
(near_copies.py) bounds the work where they are. Distances above MAX_BITS are not recorded:
such a clip scores NO_NEIGHBOUR.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.curation.filters.base import Filter
from pipelines.schemas import PHASH_BYTES

HASH_FRAMES = 4
TABLES = 32
TABLE_BITS = 24
NO_NEIGHBOUR = float(PHASH_BYTES * 8)  # a clip with no near copy scores the maximum distance
LOOKBACK = 16  # within a table key, compare with this many earlier clips (bounds the work)
MAX_BITS = 64  # pairs further apart are not near copies at any sensible threshold


def clip_phash(gray: np.ndarray) -> bytes:
    """(T, H, W) luma -> 32 bytes: a 64-bit DCT hash of each of four frames (last bit 0)."""
    count = len(gray)
    bits = []
    for quarter in range(HASH_FRAMES):
        frame = gray[min(count - 1, int((quarter + 0.5) * count / HASH_FRAMES))]
        small = cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA)
        low = cv2.dct(np.ascontiguousarray(small, np.float32))[:8, :8].ravel()[1:]  # no DC
        bits.append(np.append(low > np.median(low), False))
    return np.packbits(np.concatenate(bits)).tobytes()


def copy_rank_keys(
    resolution: np.ndarray,
    source_index: np.ndarray,
    start_s: np.ndarray,
    shard: np.ndarray,
    row: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Keys of the keeping order for `np.lexsort` (least significant first): higher source
    resolution, then earlier listed, then earlier in the source; shard and row only break ties
    (a source listed twice), so the order is total and the same on every run."""
    return row, shard, start_s, source_index, -np.nan_to_num(np.asarray(resolution, float))


def table_bits() -> np.ndarray:
    """(TABLES, TABLE_BITS) bit positions of each table's key, the same on every run."""
    rng = np.random.default_rng(20261206)
    informative = np.array([b for b in range(PHASH_BYTES * 8) if b % 64 != 63])
    return np.stack([np.sort(rng.choice(informative, TABLE_BITS, replace=False))
                     for _ in range(TABLES)])  # fmt: skip


class DuplicateFilter(Filter):
    name = "duplicate"
    level = "dataset"
    default_threshold = 16.0  # bits of 256: closer than this to an earlier clip is a copy
    meaning = "Hamming distance (of 256 bits) to the nearest earlier near-copy; 256 if none"
