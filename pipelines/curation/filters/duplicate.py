"""On-screen duplicates: the same footage uploaded twice, re-encoded, or resized. Near-duplicate
clips over-weight what they show and leak between training and held-out data.

Every clip gets a 256-bit perceptual hash while scoring: for four frames (one per quarter of
the clip), the signs of its 63 lowest-frequency DCT coefficients against their median (pHash),
which survives re-encoding and rescaling (a 2x-smaller crf-30 copy is ~10 bits away, different
footage ~100). Select compares hashes across the whole dataset: a clip's score is the smallest Hamming
distance to a clip ranked before it among the clips that passed every other filter. The rank
prefers the copy from the higher-resolution source, then the one listed first (the original
before its re-upload, in a manifest's order), so the best copy is kept and the others go. Candidates are found by banding: two
hashes within 15 bits share at least one of 16 16-bit bands, so only clips sharing a band are
compared.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.curation.filters.base import Filter
from pipelines.schemas import PHASH_BYTES

HASH_FRAMES = 4
BANDS = 16
NO_NEIGHBOUR = float(PHASH_BYTES * 8)  # a clip with no near copy scores the maximum distance
LOOKBACK = 16  # within a band bucket, compare with this many earlier clips (bounds the work)


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


def copy_rank(resolution: np.ndarray, source_index: np.ndarray, start_s: np.ndarray) -> np.ndarray:
    """Indices in keeping order: higher source resolution, then earlier listed, then earlier."""
    return np.lexsort((start_s, source_index, -np.nan_to_num(np.asarray(resolution, float))))


def distance_to_earlier(hashes: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For each clip, the Hamming distance to its nearest near copy ranked before it.

    `hashes` is (N, 32) uint8, `rank` the keeping order (`copy_rank`). Clips with no candidate
    sharing a band get NO_NEIGHBOUR."""
    count = len(hashes)
    best = np.full(count, NO_NEIGHBOUR)
    if count < 2:
        return best
    ordered = np.ascontiguousarray(hashes[rank])
    words = ordered.view(np.uint64)  # (N, 4)
    pairs = ordered.view(np.uint16)  # (N, 16): one band each
    ordered_best = best.copy()
    for band in range(BANDS):
        by_band = np.argsort(pairs[:, band], kind="stable")  # stable: clip-id order inside
        keys = pairs[by_band, band]
        for lag in range(1, LOOKBACK + 1):
            same = keys[lag:] == keys[:-lag]
            if not same.any():
                break
            later, earlier = by_band[lag:][same], by_band[:-lag][same]
            distance = np.bitwise_count(words[later] ^ words[earlier]).sum(axis=1)
            ordered_best[later] = np.minimum(ordered_best[later], distance)
    best[rank] = ordered_best
    return best


class DuplicateFilter(Filter):
    name = "duplicate"
    level = "dataset"
    default_threshold = 16.0  # bits of 256: closer than this to an earlier clip is a copy
    meaning = "Hamming distance (of 256 bits) to the nearest earlier near-copy; 256 if none"
