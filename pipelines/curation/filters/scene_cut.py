"""Scene cuts: a clip containing a hard cut (a level change, an edited montage) teaches the
model transitions no action causes.

Decoding already splits every source into shots at `decode.cut_threshold` (see
pipelines/curation/decode.py), so no clip holds a change above it; this score lets select be
stricter without decoding again. The score is the largest colour-histogram change between two
consecutive frames (half the L1 distance of 64-bin RGB histograms, in [0, 1]): scrolling and
moving sprites change it little, a cut to a new scene changes most of it.
"""

from __future__ import annotations

import cv2
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


def frame_histogram(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (64,): `colour_histograms` of one frame (by OpenCV: the decoder runs
    it on every output frame)."""
    sample = np.ascontiguousarray(frame[::2, ::2])
    ranges = [0, 256] * 3
    counts = cv2.calcHist([sample], [0, 1, 2], None, [BINS_PER_CHANNEL] * 3, ranges).ravel()
    return counts.astype(np.float64) / (sample.shape[0] * sample.shape[1])


def histogram_change(before: np.ndarray, after: np.ndarray) -> float:
    """Share of the picture whose coarse colour changed between two histograms, in [0, 1]."""
    return float(0.5 * np.abs(after - before).sum())


class SceneCutFilter(ClipFilter):
    name = "scene_cut"
    keep_above = False
    default_threshold = 0.35  # = decode.cut_threshold: a stricter value rejects more
    meaning = "largest colour-histogram change between consecutive frames (0-1)"

    def score(self, clip: Clip) -> float:
        if len(clip.frames) < 2:
            return 0.0
        histograms = (
            clip.histograms if clip.histograms is not None else colour_histograms(clip.frames)
        )
        return float(0.5 * np.abs(np.diff(histograms, axis=0)).sum(axis=1).max())
