"""Hard cuts on recordings whose cuts are known: `genie record` marks every game reset in the
actions table (`reset` is True on frame i when frames i and i+1 are a cut).

Two figures: how well the cut detector (the colour-histogram change between consecutive
output frames) separates resets from ordinary frame pairs, at several thresholds; and how much
footage three ways of handling cuts keep, decoding each recording as `genie curate` does:

  drop   the fixed clip grid from each source's start; a clip holding a cut is dropped
  shots  clips within shots, from each shot's start
  tail   shots, plus a clip ending on a shot's last frame when half a clip is left (curation)
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from jobs.common.parsers import command_parser
from pipelines.curation.decode import ClipDecoder, DecodeSpec
from pipelines.curation.filters.scene_cut import colour_histograms
from pipelines.video import read_frames

THRESHOLDS = (0.2, 0.3, 0.35, 0.4, 0.5, 0.6)
EPILOG = """\
examples:
  genie record coinrun --out data/coinrun/raw --segments 24 --seconds 64 --seed 7
  python -m jobs.benchmarks.curate_cuts data/coinrun/raw
"""


def recordings(folder: Path) -> list[tuple[Path, np.ndarray]]:
    """(video, frame indices i where frames i and i+1 are a cut) of each recording."""
    found = []
    for video in sorted(folder.glob("*.mp4")):
        table = pq.read_table(video.with_suffix(".actions.parquet"), columns=["reset"])
        found.append((video, np.flatnonzero(table.column("reset").to_numpy(zero_copy_only=False))))
    return found


def detector(found: list[tuple[Path, np.ndarray]]) -> dict[str, Any]:
    """Histogram changes at resets and elsewhere; recall and false cuts per threshold."""
    at_cuts, elsewhere = [], []
    for video, resets in found:
        frames = read_frames(video)
        histograms = colour_histograms(frames)
        change = 0.5 * np.abs(np.diff(histograms, axis=0)).sum(axis=1)
        is_cut = np.zeros(len(change), bool)
        is_cut[resets[resets < len(change)]] = True
        at_cuts += change[is_cut].tolist()
        elsewhere += change[~is_cut].tolist()
    cuts, others = np.array(at_cuts), np.array(elsewhere)
    return {
        "cuts": len(cuts),
        "pairs_without_cut": len(others),
        "smallest_change_at_a_cut": round(float(cuts.min()), 3) if len(cuts) else None,
        "largest_change_elsewhere": round(float(others.max()), 3),
        "by_threshold": {f"{t:g}": _at(cuts, others, t) for t in THRESHOLDS},
    }


def _at(cuts: np.ndarray, others: np.ndarray, threshold: float) -> dict[str, Any]:
    recall = round(float((cuts > threshold).mean()), 3) if len(cuts) else None
    return {"recall": recall, "false_cuts": int((others > threshold).sum())}


def policies(found: list[tuple[Path, np.ndarray]], spec: DecodeSpec) -> dict[str, Any]:
    """Clips and covered seconds of each way of handling cuts, on the detector's cuts."""
    size = spec.clip_frames
    kept = {"drop": [0, 0], "shots": [0, 0], "tail": [0, 0]}  # clips, frames covered
    total = 0
    for video, _ in found:
        with ClipDecoder(str(video), spec) as decoder:
            starts = [clip.start_frame for clip in decoder.clips()]
            total += decoder.output_frames
        shots = decoder.cut_frames
        grid = range(0, decoder.output_frames - size + 1, spec.stride_frames)
        dropped = [s for s in grid if not any(s < cut < s + size for cut in shots)]
        kept["drop"][0] += len(dropped)
        kept["drop"][1] += _covered(dropped, size)
        bounds = [0, *shots, decoder.output_frames]
        plain = [
            start + offset
            for start, end in itertools.pairwise(bounds)
            for offset in range(0, end - start - size + 1, spec.stride_frames)
        ]
        kept["shots"][0] += len(plain)
        kept["shots"][1] += _covered(plain, size)
        kept["tail"][0] += len(starts)
        kept["tail"][1] += _covered(starts, size)
    return {
        "decoded_s": total / spec.fps,
        **{name: {"clips": clips, "covered_s": frames / spec.fps,
                  "covered_share": round(frames / max(1, total), 3)}
           for name, (clips, frames) in kept.items()},
    }  # fmt: skip


def _covered(starts: list[int], size: int) -> int:
    covered = end = 0
    for start in sorted(starts):
        covered += start + size - max(start, end)
        end = start + size
    return covered


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m jobs.benchmarks.curate_cuts", __doc__, EPILOG)
    parser.add_argument("folder", type=Path, help="a `genie record` output folder")
    args = parser.parse_args(argv)
    found = recordings(args.folder)
    figures = {"recordings": len(found), "detector": detector(found),
               "policies": policies(found, DecodeSpec())}  # fmt: skip
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
