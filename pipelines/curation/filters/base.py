"""A curation filter: one named score, a threshold, and a verdict (keep, or the filter's name as
the reject reason).

Filters only score; they never drop anything themselves. Select compares the stored scores with
thresholds, so a data engineer can change a threshold without decoding again. A score that
cannot be computed is NaN and never passes: the row is reported, not silently kept.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import cv2
import numpy as np


@dataclass(frozen=True)
class Clip:
    """What a pixel filter sees: the clip at output size and the facts of its source."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    gray: np.ndarray  # (T, H, W) float32 luma in [0, 255]
    source_width: int
    source_height: int
    histograms: np.ndarray | None = None  # (T, 64) colour histograms, if the decoder made them

    @classmethod
    def of(
        cls,
        frames: np.ndarray,
        source_width: int,
        source_height: int,
        histograms: np.ndarray | None = None,
    ) -> Clip:
        count, height, width, _ = frames.shape
        flat = np.ascontiguousarray(frames).reshape(count * height, width, 3)
        gray = cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY).reshape(count, height, width)
        return cls(frames, gray.astype(np.float32), source_width, source_height, histograms)


class Filter:
    """A named score and the direction in which it passes its threshold."""

    name: ClassVar[str]
    keep_above: ClassVar[bool] = True  # keep when score >= threshold, else when score <= it
    default_threshold: ClassVar[float]
    level: ClassVar[Literal["source", "clip", "dataset"]] = "clip"
    meaning: ClassVar[str]  # one line for --help and the summary: what the score measures

    @property
    def op(self) -> str:
        return ">=" if self.keep_above else "<="

    def passes(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """Boolean mask of the scores that pass; NaN (could not score) never passes."""
        values = np.asarray(scores, np.float64)
        with np.errstate(invalid="ignore"):
            kept = values >= threshold if self.keep_above else values <= threshold
        return kept & ~np.isnan(values)


class ClipFilter(Filter, ABC):
    """A filter scored from the pixels of one clip while scoring."""

    @abstractmethod
    def score(self, clip: Clip) -> float:
        """The clip's score (higher is better when keep_above)."""
