"""Blank: black, dark or flat-colour screens (loading screens, fades, a dead capture).

The score is the median over frames of the spatial standard deviation of luma: a black or
single-colour frame has ~0 whatever its brightness, while a dark but detailed scene keeps a
clear spread. The median ignores a short fade inside otherwise good footage.
"""

from __future__ import annotations

import numpy as np

from pipelines.curation.filters.base import Clip, ClipFilter


class BlankFilter(ClipFilter):
    name = "blank"
    default_threshold = 8.0
    meaning = "median per-frame standard deviation of luma (0-255); ~0 for black/flat frames"

    def score(self, clip: Clip) -> float:
        return float(np.median(clip.gray.std(axis=(1, 2))))
