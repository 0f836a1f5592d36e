"""Pyarrow schemas of everything curation reads and writes.

Score writes one table, `scored/`, with two kinds of rows: one per clip (mp4 bytes and every
pixel score) and one per entry of the listing (what happened to it: scored, rejected before
decode, errored, or skipped by the listing with the reason). Select turns it into the published tables: `clips/` (kept clips, what training
reads), `rejects/` (clips and sources that did not pass, with reason and scores, no video),
`errors/` (sources or clips that could not be processed, with the error text) and `sources/`
(one final verdict per entry, so inputs = accepted + rejected + errored + skipped can be
checked).
"""

from __future__ import annotations

import pyarrow as pa

# Scores computed from pixels while scoring, in the order filters are applied.
PIXEL_SCORES = ("resolution", "blank", "motion", "scene_cut", "blur")
# Cheap extra features the learned quality model may use (not filters themselves).
FEATURES = ("luma_mean", "colorfulness")
# Scores computed over the scored dataset by select (no decoding).
DATASET_SCORES = ("quality", "duplicate")
SCORE_COLUMNS = PIXEL_SCORES + FEATURES + DATASET_SCORES
PHASH_BYTES = 32  # four 64-bit difference hashes, one per quarter of the clip

_CLIP_FIELDS = [
    pa.field("clip_id", pa.string()),
    pa.field("source_uri", pa.string()),
    pa.field("source_id", pa.string()),
    pa.field("start_s", pa.float64()),
    pa.field("num_frames", pa.int32()),
    pa.field("fps", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("width", pa.int32()),
]

SOURCE_STATUS = ("scored", "rejected", "errored", "skipped")  # status of a source row in scored/

SCORED_SCHEMA = pa.schema(
    [pa.field("kind", pa.string())]  # "clip" or "source"
    + [pa.field("source_index", pa.int64())]  # place in the listing: the first copy is kept
    + _CLIP_FIELDS
    + [pa.field("video", pa.binary())]
    + [pa.field(name, pa.float32()) for name in PIXEL_SCORES + FEATURES]
    + [
        pa.field("phash", pa.binary(PHASH_BYTES)),
        pa.field("error", pa.string()),  # clip rows: scoring failed; source rows: why it errored
        # source rows only
        pa.field("status", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("note", pa.string()),  # e.g. decoding stopped early, with why
        pa.field("source_bytes", pa.int64()),
        pa.field("duration_s", pa.float64()),
        pa.field("source_width", pa.int32()),
        pa.field("source_height", pa.int32()),
        pa.field("source_fps", pa.float64()),
        pa.field("frames_decoded", pa.int64()),
        pa.field("clips", pa.int32()),
        pa.field("shots", pa.int32()),  # pieces between hard cuts; clips never cross one
        pa.field("short_shots", pa.int32()),  # shots shorter than a clip (they give no clip)
        pa.field("frames_in_clips", pa.int64()),  # output frames that clips cover
        pa.field("frames_lost_to_cuts", pa.int64()),  # would be in a clip without the cuts
        pa.field("decode_s", pa.float64()),
        pa.field("worker_peak_rss_mb", pa.float64()),
    ]
)

_SCORE_FIELDS = [pa.field(name, pa.float32()) for name in SCORE_COLUMNS]

CLIPS_SCHEMA = pa.schema(
    [
        *_CLIP_FIELDS,
        pa.field("video", pa.binary()),
        *_SCORE_FIELDS,
        pa.field("phash", pa.binary(PHASH_BYTES)),
        pa.field("keep", pa.bool_()),
        pa.field("reject_reason", pa.string()),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("level", pa.string()),  # "clip" or "source"
        *_CLIP_FIELDS,  # clip_id and start_s are null for a source-level reject
        *_SCORE_FIELDS,
        pa.field("reject_reason", pa.string()),
        pa.field("detail", pa.string()),
    ]
)

ERRORS_SCHEMA = pa.schema(
    [
        pa.field("level", pa.string()),  # "source" or "clip"
        pa.field("source_uri", pa.string()),
        pa.field("source_id", pa.string()),
        pa.field("clip_id", pa.string()),
        pa.field("error", pa.string()),
    ]
)

SOURCE_VERDICTS = ("accepted", "rejected", "errored", "skipped")

SOURCES_SCHEMA = pa.schema(
    [
        pa.field("source_uri", pa.string()),
        pa.field("source_id", pa.string()),
        pa.field("verdict", pa.string()),  # one of SOURCE_VERDICTS
        pa.field("reason", pa.string()),  # why rejected, errored or skipped; "" when accepted
        pa.field("clips_scored", pa.int32()),
        pa.field("clips_kept", pa.int32()),
        pa.field("source_bytes", pa.int64()),
        pa.field("duration_s", pa.float64()),
        pa.field("source_width", pa.int32()),
        pa.field("source_height", pa.int32()),
        pa.field("source_fps", pa.float64()),
        pa.field("shots", pa.int32()),
        pa.field("short_shots", pa.int32()),
        pa.field("frames_lost_to_cuts", pa.int64()),
        pa.field("decode_s", pa.float64()),
        pa.field("note", pa.string()),
    ]
)
