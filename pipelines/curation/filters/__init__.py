"""Curation filters in the order select applies them; the first that fails names the reason.

`too_short` judges whole sources while decoding; the pixel filters score each clip once while
scoring; `quality` and `duplicate` are computed by select over the scored dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.curation.filters.base import Clip, ClipFilter, Filter
from pipelines.curation.filters.blank import BlankFilter
from pipelines.curation.filters.blur import BlurFilter
from pipelines.curation.filters.duplicate import DuplicateFilter, clip_phash
from pipelines.curation.filters.motion import MotionFilter
from pipelines.curation.filters.quality import QualityFilter, clip_features
from pipelines.curation.filters.resolution import ResolutionFilter
from pipelines.curation.filters.scene_cut import SceneCutFilter
from pipelines.curation.filters.too_short import TooShortFilter

CLIP_FILTERS: tuple[ClipFilter, ...] = (
    ResolutionFilter(),
    BlankFilter(),
    MotionFilter(),
    SceneCutFilter(),
    BlurFilter(),
)
SELECT_FILTERS: tuple[Filter, ...] = (*CLIP_FILTERS, QualityFilter(), DuplicateFilter())
BY_NAME: dict[str, Filter] = {f.name: f for f in (TooShortFilter(), *SELECT_FILTERS)}


@dataclass(frozen=True)
class Thresholds:
    """One threshold per select filter; each filter's docstring says what its score means."""

    resolution: float = ResolutionFilter.default_threshold
    blank: float = BlankFilter.default_threshold
    motion: float = MotionFilter.default_threshold
    scene_cut: float = SceneCutFilter.default_threshold
    blur: float = BlurFilter.default_threshold
    quality: float = QualityFilter.default_threshold  # used only when a quality model is set
    duplicate: float = DuplicateFilter.default_threshold


def score_clip(
    frames: np.ndarray,
    source_width: int,
    source_height: int,
    histograms: np.ndarray | None = None,
) -> dict[str, object]:
    """Every pixel score, feature and the perceptual hash of one (T, H, W, 3) clip
    (`histograms`: its (T, 64) colour histograms, when the decoder already made them)."""
    clip = Clip.of(frames, source_width, source_height, histograms)
    scores: dict[str, object] = {f.name: f.score(clip) for f in CLIP_FILTERS}
    scores.update(clip_features(clip))
    scores["phash"] = clip_phash(clip.gray)
    return scores


def describe_filters() -> str:
    """One line per filter for --help."""
    return "\n".join(
        f"  {f.name:<11} keep if {f.op} threshold (default {f.default_threshold:g}): {f.meaning}"
        for f in BY_NAME.values()
    )


__all__ = [
    "BY_NAME",
    "CLIP_FILTERS",
    "SELECT_FILTERS",
    "Clip",
    "Filter",
    "Thresholds",
    "describe_filters",
    "score_clip",
]
