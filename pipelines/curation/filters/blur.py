"""Blur: out-of-focus captures and heavily upscaled footage give the tokenizer nothing sharp to
learn. Measured at the output size (160x90), which is what the model sees.

The score is the median over sampled frames of the variance of the Laplacian of luma; sharp
edges give a large variance, smooth images a small one.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.curation.filters.base import Clip, ClipFilter

SAMPLED_FRAMES = 16


class BlurFilter(ClipFilter):
    name = "blur"
    default_threshold = 50.0
    meaning = "median variance of the Laplacian of luma over sampled frames (higher = sharper)"

    def score(self, clip: Clip) -> float:
        picks = np.linspace(0, len(clip.gray) - 1, min(SAMPLED_FRAMES, len(clip.gray)))
        variances = [cv2.Laplacian(clip.gray[int(i)], cv2.CV_32F).var() for i in picks]
        return float(np.median(variances))
