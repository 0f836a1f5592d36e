"""Too low resolution: a source whose 16:9 center crop is smaller than the output would be
upscaled, which invents pixels the tokenizer would learn from.

The score is the height in source pixels of the 16:9 center crop (the same for every clip of
a source), so select can tighten or relax it without decoding.
"""

from __future__ import annotations

from pipelines.curation.filters.base import Clip, ClipFilter


def crop_height(width: int, height: int) -> float:
    """Height of the largest centered 16:9 rectangle inside width x height."""
    return float(min(height, width * 9 / 16))


class ResolutionFilter(ClipFilter):
    name = "resolution"
    default_threshold = 90.0  # the output height: no upscaling
    meaning = "height in source pixels of the 16:9 center crop"

    def score(self, clip: Clip) -> float:
        return crop_height(clip.source_width, clip.source_height)
