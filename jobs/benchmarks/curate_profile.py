"""Where a scoring task's time goes: the per-source work of `genie curate score`, operator by
operator, in one process on one core, beside the bare PyAV loop over the same files.

Each operator is timed where the pipeline calls it (the decoder's conversion and cut detection
are timed by wrapping the functions it calls; the rest is the same sequence `score_source` runs),
in CPU seconds of this process, so other load on the machine does not inflate it. Decode is what
is left of the decoder's time once conversion and cut detection are taken out.
"""

from __future__ import annotations

import io
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import pipelines.curation.decode as decode
from pipelines.curation.decode import ClipDecoder, DecodeSpec
from pipelines.curation.filters import CLIP_FILTERS
from pipelines.curation.filters.base import Clip
from pipelines.curation.filters.duplicate import clip_phash
from pipelines.curation.filters.quality import clip_features
from pipelines.curation.sources import local_copy
from pipelines.schemas import SCORED_SCHEMA
from pipelines.video import encode_mp4, write_video

DECODER = "decoder (decode + convert + cut detection)"


def profile_operators(paths: list[Path], spec: DecodeSpec) -> dict[str, Any]:
    """CPU seconds per operator over `paths`, and the clip count."""
    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, function: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.process_time() - started

        return wrapper

    originals = decode.resize_frame, decode.frame_histogram
    decode.resize_frame = timed("convert + resize (swscale)", decode.resize_frame)
    decode.frame_histogram = timed("cut detection", decode.frame_histogram)
    clips = 0
    try:
        for path in paths:
            copy = local_copy(str(path))
            _, local = timed("read + hash", copy.__enter__)()
            try:
                decoder = ClipDecoder(local, spec)
                stream = iter(decoder.clips())
                while (clip := timed(DECODER, next)(stream, None)) is not None:
                    clips += 1
                    view = timed("gray", Clip.of)(
                        clip.frames, decoder.width, decoder.height, clip.histograms
                    )
                    row: dict[str, Any] = {"kind": "clip", "clip_id": f"{clips}"}
                    for scorer in CLIP_FILTERS:
                        row[scorer.name] = timed(f"score: {scorer.name}", scorer.score)(view)
                    row.update(timed("features", clip_features)(view))
                    row["phash"] = timed("perceptual hash", clip_phash)(view.gray)
                    row["video"] = timed("encode (x264)", encode_mp4)(
                        clip.frames, spec.fps, spec.crf
                    )
                    timed("parquet row", _parquet)(row)
                decoder.close()
            finally:
                copy.__exit__(None, None, None)
    finally:
        decode.resize_frame, decode.frame_histogram = originals
    spent["decode (libavcodec)"] = (
        spent.pop(DECODER) - spent["convert + resize (swscale)"] - spent["cut detection"]
    )
    return {"clips": clips, "cpu_s": dict(spent)}


def _parquet(row: dict[str, Any]) -> None:
    """What a scoring task does per clip row: an Arrow table, written as Parquet."""
    pq.write_table(pa.Table.from_pylist([row], schema=SCORED_SCHEMA), io.BytesIO())


def print_profile(profile: dict[str, Any], bare_cpu_s: float) -> None:
    """ms per clip of each operator, and the whole against the bare loop's ms per clip."""
    clips = max(1, profile["clips"])
    spent = profile["cpu_s"]
    total = sum(spent.values())
    print(f"\nper-operator profile, one process ({profile['clips']} clips), CPU ms per clip:")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {name:<32} {1000 * seconds / clips:8.2f}  {100 * seconds / total:5.1f}%")
    print(f"  {'all operators':<32} {1000 * total / clips:8.2f}")
    print(f"  {'bare loop (decode + resize)':<32} {1000 * bare_cpu_s / clips:8.2f}  "
          f"(ratio bare / operators: {bare_cpu_s / total:.2f})")  # fmt: skip


PRESETS = ("faster", "veryfast", "superfast", "ultrafast")


def compare_presets(paths: list[Path], spec: DecodeSpec, clips_per_source: int = 2) -> None:
    """CPU ms and KB per clip of each x264 preset on the first clips of each source."""
    clips = []
    for path in paths:
        with ClipDecoder(str(path), spec) as decoder:
            clips += [clip.frames for clip in itertools.islice(decoder.clips(), clips_per_source)]
    print(f"\nx264 presets at crf {spec.crf}, {len(clips)} clips of {spec.clip_frames} frames:")
    for preset in PRESETS:
        started, size = time.process_time(), 0
        for frames in clips:
            buffer = io.BytesIO()
            write_video(buffer, frames, spec.fps, options={"crf": str(spec.crf), "preset": preset})
            size += len(buffer.getvalue())
        spent = time.process_time() - started
        print(
            f"  {preset:<10} {1000 * spent / len(clips):6.1f} ms  {size / len(clips) / 1024:6.1f} KB"
        )


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m jobs.benchmarks.curate_profile",
                                     description=__doc__)  # fmt: skip
    parser.add_argument("sources", nargs="+", type=Path, help="video files")
    parser.add_argument("--presets", action="store_true", help="also compare x264 presets")
    args = parser.parse_args(argv)
    from jobs.benchmarks.curate import bare_loop

    spec = DecodeSpec()
    print_profile(profile_operators(args.sources, spec), bare_loop(args.sources, spec)["cpu_s"])
    if args.presets:
        compare_presets(args.sources, spec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
