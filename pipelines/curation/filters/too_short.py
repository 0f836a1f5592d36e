"""Too short: a source that cannot fill one clip is rejected as a whole.

Scored per source (decoded seconds at the output frame rate), not per clip: the only clips
that exist are full ones, so the threshold is the clip length itself and cannot be changed
by select.
"""

from __future__ import annotations

from pipelines.curation.filters.base import Filter


class TooShortFilter(Filter):
    name = "too_short"
    level = "source"
    default_threshold = 16.0  # seconds; the real threshold is clip_frames / fps
    meaning = "decoded duration of the source in seconds; a clip needs clip_frames / fps"
