"""Static: a paused game, a menu, a frozen capture. No motion means no actions to learn.

The score is the mean over consecutive frame pairs of the fraction of pixels whose luma changes
by more than a few levels (so H.264 noise on a still screen scores ~0, while one small sprite
moving over a still background still scores clearly above it).
"""

from __future__ import annotations

import numpy as np

from pipelines.curation.filters.base import Clip, ClipFilter

CHANGE_LEVELS = 12.0  # luma change (0-255) counted as motion; above x264 noise at crf 18-23


class MotionFilter(ClipFilter):
    name = "motion"
    default_threshold = 0.002
    meaning = "mean fraction of pixels changing between consecutive frames"

    def score(self, clip: Clip) -> float:
        if len(clip.gray) < 2:
            return float("nan")
        changed = np.abs(np.diff(clip.gray, axis=0)) > CHANGE_LEVELS
        return float(changed.mean())
