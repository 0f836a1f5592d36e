"""The built-in synthetic game: actions drive the game, videos are real and reproducible, and the
corpus holds every kind of bad source curation must handle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.synth import ACTIONS, generate_corpus, load_actions
from pipelines.synth.corpus import SourceSpec, gameplay
from pipelines.synth.game import ACTION_IDS, THEMES, TILE, GameState, make_level
from pipelines.synth.render import Renderer
from pipelines.video import read_frames


def play(action: str, frames: int, seed: int = 1) -> GameState:
    state = GameState(make_level(seed))
    for _ in range(frames):
        state.step(ACTION_IDS[action])
    return state


def test_the_action_set_is_the_platformer_keys():
    assert ACTIONS == ("noop", "left", "right", "jump", "left+jump", "right+jump")


def test_actions_move_the_player_as_named():
    start = GameState(make_level(1))
    assert play("right", 5).x > start.x
    assert play("noop", 5).x == start.x
    walked = GameState(make_level(1), x=200.0)
    walked.step(ACTION_IDS["left"])
    assert walked.x < 200.0
    jumping = GameState(make_level(1))
    heights = []
    for _ in range(40):
        jumping.step(ACTION_IDS["jump"] if not heights else ACTION_IDS["noop"])
        heights.append(jumping.y)
    assert max(heights) > start.y + 20  # it rises...
    assert heights[-1] == pytest.approx(start.y)  # ...and gravity brings it back down


def test_different_actions_from_one_state_render_different_frames():
    level = make_level(2)
    renderer = Renderer(level)
    frames = {}
    for name in ("noop", "left", "right", "jump"):
        state = GameState(level, x=300.0)
        for _ in range(6):
            state.step(ACTION_IDS[name])
        frames[name] = renderer.draw(state)
    names = list(frames)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.array_equal(frames[a], frames[b]), f"{a} and {b} look the same"


def test_a_running_player_scrolls_the_scene_one_tile_per_curated_frame():
    """Whole-tile scroll, one tile per 3 source frames (one 10 FPS frame): at 160x90 a tile is
    one 8-pixel token of the `tiny` tokenizer, so a step of scroll moves the scene by whole
    tokens."""
    state = GameState(make_level(3))
    renderer = Renderer(state.level)
    cameras = []
    for frame in range(150):
        if frame % 3 == 0:
            cameras.append(renderer.camera_x(state))
        state.step(ACTION_IDS["right"])
    steps = np.diff(cameras)
    assert set(steps) <= {0, TILE}  # a wall can stop it, nothing moves it by part of a tile
    assert (steps == TILE).mean() > 0.5


def test_scrolling_left_and_right_by_a_tile_draw_different_ground():
    """With a two-tile checker both would draw the same ground (the wagon-wheel effect), and
    neither a latent action model nor a dynamics model could tell left from right."""
    level = make_level(2)
    renderer = Renderer(level)
    left, right = (renderer.draw(GameState(level, x=300.0 + dx)) for dx in (-TILE, TILE))
    bottom = slice(renderer.height - 2 * TILE, renderer.height)  # ground, where there is no pit
    assert (left[bottom] != right[bottom]).any(axis=-1).mean() > 0.3


def test_levels_look_different_and_the_same_seed_gives_the_same_video():
    assert make_level(5).palette == make_level(6).palette  # one theme, so only the level differs
    spec = SourceSpec("x.mp4", "gameplay", 1.0, seed=5, expected="keep")
    first = np.stack(list(gameplay(spec)[0]))
    again = np.stack(list(gameplay(spec)[0]))
    other = np.stack(list(gameplay(SourceSpec("y.mp4", "gameplay", 1.0, 6, "keep"))[0]))
    assert first.shape == (30, 180, 320, 3)
    assert np.array_equal(first, again)
    changed = np.abs(first.astype(int) - other).sum(axis=-1) > 0
    assert changed.mean() > 0.1  # other terrain and hills
    assert {make_level(seed).palette for seed in range(20)} == set(range(THEMES))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    generate_corpus(out, videos=3, seed=0, duration_range=(3.0, 4.0), workers=2)
    return out


def manifest_rows(folder) -> dict[str, dict]:
    return {row["name"]: row for row in pq.read_table(folder / "manifest.parquet").to_pylist()}


def test_corpus_holds_gameplay_in_several_containers_and_every_bad_kind(corpus):
    rows = manifest_rows(corpus)
    suffixes = {name.rsplit(".", 1)[1] for name in rows if name.startswith("gameplay_")}
    assert suffixes == {"mp4", "webm"}  # and mkv from the fourth video on
    assert {"vfr.mkv", "duplicate.mkv"} <= set(rows)
    kinds = {row["kind"] for row in rows.values()}
    assert {"static", "black", "scene_cuts", "truncated", "corrupt_bytes"} <= kinds
    assert {"not_a_video", "zero_byte", "audio_only"} <= kinds
    assert {row["expected"].split(":")[0] for row in rows.values()} == {"keep", "reject", "error"}
    assert all((corpus / name).exists() for name in rows)
    assert not list(corpus.glob(".partial-*"))


def test_gameplay_videos_decode_at_30_fps_with_one_action_per_frame(corpus):
    for name, row in manifest_rows(corpus).items():
        if row["kind"] != "gameplay" or row["width"] != 320:
            continue
        with av.open(str(corpus / name)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (320, 180)
            assert float(stream.average_rate) == pytest.approx(30, rel=0.01)
        frames = read_frames(corpus / name)
        actions = load_actions(row["actions_uri"])
        assert len(frames) == len(actions) == row["frames"] == round(row["seconds"] * 30)
        assert set(np.unique(actions)) <= set(range(len(ACTIONS)))


def test_vfr_source_has_irregular_frame_times(corpus):
    with av.open(str(corpus / "vfr.mkv")) as container:
        times = [float(f.time) for f in container.decode(video=0)]
    gaps = np.round(np.diff(times), 3)
    assert len(set(gaps)) > 2  # 1/30, 2/30, 3/30 ... apart
    assert times[-1] == pytest.approx(40.0, abs=0.5)


@pytest.mark.parametrize(
    "name", ["truncated.mp4", "corrupt_bytes.mp4", "not_a_video.mp4", "zero_byte.mp4"]
)
def test_broken_files_do_not_decode(corpus, name):
    with pytest.raises(av.error.FFmpegError), av.open(str(corpus / name)) as container:
        list(container.decode(video=0))


def test_audio_only_file_has_no_video_stream(corpus):
    with av.open(str(corpus / "audio_only.mp4")) as container:
        assert len(container.streams.video) == 0
        assert len(container.streams.audio) == 1


def test_static_and_black_sources_do_not_change(corpus):
    for name in ("static.mp4", "black.mp4"):
        frames = read_frames(corpus / name).astype(int)
        assert np.abs(np.diff(frames, axis=0)).mean() < 0.5, name  # codec noise only
    assert read_frames(corpus / "black.mp4").max() <= 3


def test_a_corpus_rendered_again_holds_the_same_bytes(corpus, tmp_path):
    """Clip ids hash a source's bytes, so rendering the corpus again must give the same clips
    and the same held-out split: no muxer UID or date (Matroska/WebM), and an encoder that
    gives the same bytes for the same frames with workers running side by side."""
    again = tmp_path / "again"
    generate_corpus(again, videos=3, seed=0, duration_range=(3.0, 4.0), workers=2)
    names = sorted(row["name"] for row in pq.read_table(corpus / "manifest.parquet").to_pylist())
    assert {Path(name).suffix for name in names} >= {".mp4", ".mkv", ".webm"}
    differ = [name for name in names if (corpus / name).read_bytes() != (again / name).read_bytes()]
    assert differ == []


def test_a_rerun_resumes_and_rewrites_only_what_is_missing(corpus):
    before = manifest_rows(corpus)
    (corpus / "_done" / "gameplay_0001.webm.json").unlink()
    (corpus / "gameplay_0001.webm").unlink()
    lines: list[str] = []
    generate_corpus(
        corpus, videos=3, seed=0, duration_range=(3.0, 4.0), workers=1, progress=lines.append
    )
    assert lines[0] == "resuming: 14 of 15 sources already written"
    assert sum("gameplay_0001.webm" in line for line in lines) == 1
    after = manifest_rows(corpus)
    assert set(after) == set(before)
    assert (corpus / "gameplay_0001.webm").exists()


def test_cli_rejects_a_bad_duration_range_naming_it():
    result = subprocess.run(
        [sys.executable, "-m", "jobs.synth", "--out", "x", "--duration-range", "9,2"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--duration-range" in result.stderr and "MIN <= MAX" in result.stderr
