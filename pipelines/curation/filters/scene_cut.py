"""Scene cuts: a clip containing a hard cut (a level change, an edited montage) teaches the
model transitions no action causes.

Such clips are DROPPED, not split: clips have a fixed length, and splitting at the cut would
leave two pieces shorter than a clip. The score is the largest colour-histogram change between
two consecutive frames (half the L1 distance of 64-bin RGB histograms, in [0, 1]): scrolling
and moving sprites change it little, a cut to a new scene changes most of it.
"""

from __future__ import annotations

import numpy as np

from pipelines.curation.filters.base import Clip, ClipFilter

BINS_PER_CHANNEL = 4


def colour_histograms(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 64) normalised histograms of coarse RGB colours, from every
    second pixel each way (a cut changes the whole picture; a quarter of it shows that)."""
    levels = frames[:, ::2, ::2] >> 6  # 4 levels per channel, still uint8
    codes = (levels[..., 0] * BINS_PER_CHANNEL + levels[..., 1]) * BINS_PER_CHANNEL
    codes = (codes + levels[..., 2]).reshape(len(frames), -1).astype(np.int32)
    bins = BINS_PER_CHANNEL**3
    codes += (np.arange(len(frames), dtype=np.int32) * bins)[:, None]
    counts = np.bincount(codes.ravel(), minlength=len(frames) * bins)
    return counts.reshape(len(frames), bins) / codes.shape[1]


class SceneCutFilter(ClipFilter):
    name = "scene_cut"
    keep_above = False
    default_threshold = 0.5
    meaning = "largest colour-histogram change between consecutive frames (0-1); cuts drop"

    def score(self, clip: Clip) -> float:
        if len(clip.frames) < 2:
            return 0.0
        histograms = colour_histograms(clip.frames)
        return float(0.5 * np.abs(np.diff(histograms, axis=0)).sum(axis=1).max())
