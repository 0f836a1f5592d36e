"""Decoding a source into shots and clips, and the bounds on hostile sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tests.curate_videos as cv
from jobs.benchmarks.curate_hostile import png_bomb, timestamp_gap
from pipelines.curation.decode import ClipDecoder, DecodeSpec
from pipelines.curation.filters.scene_cut import colour_histograms
from pipelines.curation.scoring import score_source

REPO = Path(__file__).resolve().parents[3]


def largest_change(frames: np.ndarray) -> float:
    histograms = colour_histograms(frames)
    return float(0.5 * np.abs(np.diff(histograms, axis=0)).sum(axis=1).max())


def test_two_hard_cuts_20s_apart_give_clips_without_a_cut(tmp_path):
    """60 s with cuts at 20 s and 40 s: the fixed 16 s grid put a cut in two of three clips
    (both dropped); shots give three clips, none holding a cut."""
    path = cv.shots(tmp_path / "levels.mp4", 20.0, seeds=(1, 2, 3))
    spec = DecodeSpec()
    with ClipDecoder(str(path), spec) as decoder:
        clips = list(decoder.clips())
    assert [c.start_frame for c in clips] == [0, 200, 400]
    assert [c.shot for c in clips] == [0, 1, 2]
    for clip in clips:
        assert clip.frames.shape == (160, 90, 160, 3)
        assert largest_change(clip.frames) < spec.cut_threshold
    assert (decoder.shots, decoder.cuts, decoder.short_shots) == (3, 2, 0)
    assert decoder.frames_in_clips == 480
    assert spec.frames_in_clips(decoder.output_frames) == 600  # without the cuts


def test_a_shots_end_gets_a_clip_when_half_a_clip_is_left(tmp_path):
    """25 s shots: a clip from each shot's start, and one ending on its last frame (9 s left
    over), so the shot loses nothing; 8 s short shots give none and are counted."""
    path = cv.shots(tmp_path / "levels.mp4", 25.0, seeds=(4, 5))
    with ClipDecoder(str(path), DecodeSpec()) as decoder:
        starts = [c.start_frame for c in decoder.clips()]
    assert starts == [0, 90, 250, 340]
    assert decoder.frames_in_clips == decoder.output_frames == 500
    path = cv.shots(tmp_path / "short.mp4", 8.0, seeds=(6, 7, 8))
    with ClipDecoder(str(path), DecodeSpec(clip_frames=100, stride_frames=100)) as decoder:
        assert list(decoder.clips()) == []
    assert (decoder.shots, decoder.short_shots) == (3, 3)


def test_clip_plan_within_a_shot():
    spec = DecodeSpec(clip_frames=10, stride_frames=10)
    assert spec.clip_starts(9) == []
    assert spec.clip_starts(10) == [0]
    assert spec.clip_starts(14) == [0]  # 4 left over: under half a clip
    assert spec.clip_starts(15) == [0, 5]  # 5 left over: a clip ends on the last frame
    assert spec.clip_starts(30) == [0, 10, 20]
    assert [spec.frames_in_clips(n) for n in (9, 14, 15, 30)] == [0, 10, 15, 30]
    overlapping = DecodeSpec(clip_frames=10, stride_frames=7)
    assert overlapping.clip_starts(26) == [0, 7, 14]  # 2 left over
    assert overlapping.clip_starts(29) == [0, 7, 14, 19]
    assert [overlapping.frames_in_clips(n) for n in (26, 29)] == [24, 29]


def test_clip_ids_are_stable_and_cut_free_through_scoring(tmp_path):
    path = cv.shots(tmp_path / "levels.mp4", 20.0, seeds=(1, 2, 3))
    runs = [list(score_source(str(path), 0, DecodeSpec())) for _ in range(2)]
    ids = [[r["clip_id"] for r in rows if r["kind"] == "clip"] for rows in runs]
    assert ids[0] == ids[1] and len(set(ids[0])) == 3
    source = runs[0][-1]
    assert (source["status"], source["shots"], source["frames_lost_to_cuts"]) == ("scored", 3, 120)
    assert all(r["scene_cut"] < DecodeSpec().cut_threshold for r in runs[0][:-1])


def test_time_budget_holds_while_filling_a_timestamp_gap(tmp_path):
    """Two frames 5 h apart once filled 1,125 clips however small the budget: the budget is
    checked for every output frame, not only between decoded frames."""
    path = timestamp_gap(tmp_path / "gap.mp4", 5 * 3600.0)
    rows = list(score_source(str(path), 0, DecodeSpec(time_budget_s=1.0)))
    source = rows[-1]
    assert "time_budget_s=1" in source["note"]
    assert source["duration_s"] < 5 * 3600
    assert len(rows) - 1 == source["clips"] < 1125


# The probe's own peak memory: VmHWM starts afresh at exec (ru_maxrss would carry the forking
# test process's peak over).
BOMB_PROBE = """
import json, re, sys
from pathlib import Path
from pipelines.curation.decode import DecodeSpec
from pipelines.curation.scoring import score_source
row = list(score_source(sys.argv[1], 0, DecodeSpec()))[-1]
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]) / 1024
print(json.dumps({"status": row["status"], "reason": row["reason"], "peak_mb": peak}))
"""


@pytest.mark.parametrize(
    ("container", "verdict"),
    [("", ("errored", "unsupported_container")), ("mov", ("rejected", "too_large"))],
)
def test_decode_bomb_is_refused_before_ffmpeg_decodes_it(tmp_path, container, verdict):
    """A 16000x16000 16-bit RGBA PNG (2 GB decoded) renamed .mp4, or inside a QuickTime file:
    refused without decoding a pixel. Decoding it would take the probe's process past 2 GB
    (it did: probing decoded the first frame before the size was checked)."""
    path = png_bomb(tmp_path / "bomb.mp4", container=container)
    probe = subprocess.run(
        [sys.executable, "-c", BOMB_PROBE, str(path)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-2000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert (result["status"], result["reason"]) == verdict
    assert result["peak_mb"] < 1024, result


@pytest.mark.parametrize("fps", [24, 30, 60])
def test_skipping_unshown_frames_changes_no_clip(tmp_path, fps):
    """The decoder skips non-reference frames that no 10 FPS tick shows: fewer frames are
    decoded and every clip is the same, frame for frame (constant and variable rate)."""
    sources = [cv.numbered(tmp_path / f"n{fps}.mp4", 6.0, fps)]
    sources.append(cv.vfr(tmp_path / f"vfr{fps}.mkv", 6.0, seed=fps)[0])
    spec = DecodeSpec(clip_frames=20, stride_frames=7, cut_threshold=1.0)
    for path in sources:
        decoded = []
        for skip in (True, False):
            with ClipDecoder(str(path), spec, skip_unshown=skip) as decoder:
                clips = list(decoder.clips())
            decoded.append((clips, decoder.frames_decoded, decoder.output_frames))
        (skipping, fewer, out), (whole, every, whole_out) = decoded
        assert (len(skipping), out) == (len(whole), whole_out) and len(whole) >= 5
        for a, b in zip(skipping, whole, strict=True):
            assert a.start_frame == b.start_frame and np.array_equal(a.frames, b.frames)
        if path.suffix == ".mp4":
            assert fewer < every, (fewer, every)


# Numbered frames change a third of the picture at once, which reads as a cut: these tests of
# the timeline switch shot splitting off (cut_threshold=1).
def _frame_number(frame: np.ndarray) -> int:
    """Inverse of curate_videos.numbered at 160x90 (three base-16 digits in bands)."""
    digits = [round(float(frame[band * 30 + 15, 80].mean() - 8) / 16) for band in range(3)]
    return digits[0] + 16 * digits[1] + 256 * digits[2]


@pytest.mark.parametrize("fps", [30, 25, 60])
def test_constant_rate_source_resamples_to_10fps_by_timestamp(tmp_path, fps):
    path = cv.numbered(tmp_path / f"n{fps}.mp4", 4.0, fps)
    spec = DecodeSpec(clip_frames=40, stride_frames=40, cut_threshold=1.0)
    with ClipDecoder(str(path), spec) as decoder:
        clips = list(decoder.clips())
    assert len(clips) == 1
    got = [_frame_number(f) for f in clips[0].frames]
    assert got == [int(k * fps / 10) for k in range(40)]


def test_variable_rate_source_shows_the_frame_on_screen_at_each_tick(tmp_path):
    path, times = cv.vfr_numbered(tmp_path / "vfr.mkv", 4.5, seed=5)
    spec = DecodeSpec(clip_frames=40, stride_frames=40, cut_threshold=1.0)
    with ClipDecoder(str(path), spec) as decoder:
        clips = list(decoder.clips())
    got = [_frame_number(f) for f in clips[0].frames]
    times = np.asarray(times)
    expected = [int(np.searchsorted(times, k / 10 + 1e-9, side="right") - 1) for k in range(40)]
    assert got == expected
    assert len(set(np.diff(times).round(3))) > 2  # really variable


def test_stride_overlaps_clips(tmp_path):
    path = cv.numbered(tmp_path / "n.mp4", 4.0, 10)
    spec = DecodeSpec(clip_frames=20, stride_frames=10, cut_threshold=1.0)
    with ClipDecoder(str(path), spec) as decoder:
        starts = [(c.start_s(10), _frame_number(c.frames[0])) for c in decoder.clips()]
    assert starts == [(0.0, 0), (1.0, 10), (2.0, 20)]
