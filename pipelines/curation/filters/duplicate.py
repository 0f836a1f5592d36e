"""On-screen duplicates: the same footage uploaded twice, re-encoded, or resized. Near-duplicate
clips over-weight what they show and leak between training and held-out data.

Every clip gets a 256-bit perceptual hash while scoring: for four frames (one per quarter of
the clip), the signs of its 63 lowest-frequency DCT coefficients against their median (pHash),
which survives re-encoding and rescaling (a 2x-smaller crf-30 copy is ~10 bits away, different
footage ~100). A clip's score is the smallest Hamming distance to a clip ranked before it among
the clips that passed every other filter. The rank prefers the copy from the higher-resolution
source, then the one listed first (the original before its re-upload, in a manifest's order),
so the best copy is kept and the others go. Candidate pairs are found once per scored dataset
on Ray Data by banding (pipelines/curation/near_copies.py): two hashes within 15 bits share at
least one of 16 16-bit bands, so only clips sharing a band are compared; select reads the
pairs. Distances above MAX_BITS are not recorded: such a clip scores NO_NEIGHBOUR.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.curation.filters.base import Filter
from pipelines.schemas import PHASH_BYTES

HASH_FRAMES = 4
BANDS = 16
NO_NEIGHBOUR = float(PHASH_BYTES * 8)  # a clip with no near copy scores the maximum distance
LOOKBACK = 16  # within a band value, compare with this many earlier clips (bounds the work)
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


class DuplicateFilter(Filter):
    name = "duplicate"
    level = "dataset"
    default_threshold = 16.0  # bits of 256: closer than this to an earlier clip is a copy
    meaning = "Hamming distance (of 256 bits) to the nearest earlier near-copy; 256 if none"
