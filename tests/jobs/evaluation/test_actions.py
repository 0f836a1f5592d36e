"""True actions from the action log beside a source video, at any log rate; the action map."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from jobs.evaluation.actions import action_map, labelled_windows, lam_alignment, true_actions
from models.metrics import action_alignment
from pipelines.curation.sources import manifest_column
from pipelines.training_data import heldout_ids, heldout_windows
from tests.clips import PLAYED_NAMES, played_sprite_clip, write_played_clips

FPS = 10


def write_log(folder, times, actions, names=None) -> str:
    """A source video's action log, as `genie synth` / `genie record` write it; returns the
    source video's uri (the video itself is never read)."""
    columns = {"time_s": pa.array(times, pa.float64()), "action": pa.array(actions, pa.int8())}
    if names is not None:
        columns["action_name"] = pa.array([names[a] for a in actions])
    pq.write_table(pa.table(columns), folder / "game.actions.parquet")
    return str(folder / "game.mp4")


class FixedCodes:
    """A LAM that gives the same codes whatever the frames."""

    def __init__(self, codes: np.ndarray):
        self.codes = codes

    def infer_actions(self, frames):
        return torch.from_numpy(self.codes[: len(frames)])


def window(source: str, start_s: float, start: int) -> dict:
    return {"source_uri": source, "start_s": start_s, "start": start}


def test_a_log_with_one_entry_per_frame_labels_every_window(tmp_path):
    """A recorder logs frame i at i / 10 s: float rounding puts some entries a hair after the
    window's own frame times (0.0 + 1 / 10 + 2 / 10 > 3 / 10), which once left whole windows
    unlabelled."""
    actions = np.random.default_rng(0).integers(0, 6, 330)
    source = write_log(tmp_path, np.arange(330) / 10, actions)
    for start_s, start in [(0.0, 0), (0.0, 1), (0.0, 2), (16.0, 7), (3.2, 13), (1.6, 3)]:
        labels, why = true_actions(window(source, start_s, start), frames=10, fps=FPS)
        first = round(start_s * FPS) + start
        assert why == "" and labels.tolist() == actions[first : first + 9].tolist()


def test_coarser_and_finer_logs_give_the_action_held_longest(tmp_path):
    # finer: 30 entries a second, as the built-in game logs its 30 FPS timeline
    fine = np.repeat([1, 2, 0, 3], [45, 30, 3, 42])  # 1.5 s, 1 s, 0.1 s, 1.4 s
    source = write_log(tmp_path, np.arange(len(fine)) / 30, fine)
    labels, _ = true_actions(window(source, 0.0, 0), frames=40, fps=FPS)
    assert labels.tolist() == [1] * 15 + [2] * 10 + [0] + [3] * 13
    # coarser: one entry a second
    source = write_log(tmp_path, np.arange(4, dtype=float), [5, 4, 5, 0])
    labels, _ = true_actions(window(source, 1.0, 5), frames=11, fps=FPS)
    assert labels.tolist() == [4] * 5 + [5] * 5


def test_windows_the_log_does_not_cover_say_why(tmp_path):
    source = write_log(tmp_path, np.arange(20) * 0.1, np.zeros(20, int))
    labels, why = true_actions(window(source, 5.0, 0), frames=10, fps=FPS)
    assert labels is None and "does not cover" in why
    labels, why = true_actions(window(str(tmp_path / "other.mp4"), 0.0, 0), frames=4, fps=FPS)
    assert labels is None and "no action log for" in why
    labels, why = true_actions({"start": 0}, frames=4, fps=FPS)
    assert labels is None and "source video" in why


def test_action_map_names_the_code_each_true_action_most_often_gets():
    names = {0: "noop", 1: "left", 2: "right", 3: "jump"}
    truth = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])
    codes = np.array([5, 5, 1, 3, 3, 4, 4, 5, 5])  # jump mostly gets code 5, which is noop's
    mapped = action_map(codes, truth, names)
    assert mapped["names"] == ["noop", "left", "right", "jump"]
    assert mapped["code_for_action"] == {"noop": 5, "left": 3, "right": 4}


def test_short_log_still_labels_what_it_covers(tmp_path):
    source = write_log(tmp_path, np.arange(3) * 0.1, [2, 2, 1], names={1: "left", 2: "right"})
    labels, _ = true_actions(window(source, 0.0, 0), frames=4, fps=FPS)
    assert labels.tolist() == [2, 2, 1]


def test_a_manifests_actions_uri_names_a_log_kept_apart_from_the_video(tmp_path):
    """Footage whose logs live elsewhere: the manifest's `actions_uri` (relative to the
    manifest, as `uri`) gives each video's log, keyed by the uri curation gives its clips."""
    raw, logs = tmp_path / "raw", tmp_path / "logs"
    raw.mkdir(), logs.mkdir()
    actions = np.random.default_rng(1).integers(0, 6, 100)
    write_log(logs, np.arange(100) / 10, actions)  # logs/game.actions.parquet
    (logs / "game.actions.parquet").rename(logs / "run-7.parquet")
    manifest = raw / "manifest.parquet"
    pq.write_table(
        pa.table(
            {"uri": ["game.mp4", "other.mp4"], "actions_uri": ["../logs/run-7.parquet", None]}
        ),
        manifest,
    )
    source = str(raw / "game.mp4")  # what curation records as the clips' source_uri
    found = manifest_column(str(manifest), "actions_uri")
    assert list(found) == [source]

    labels, why = true_actions(window(source, 2.0, 3), frames=5, fps=FPS, logs=found)
    assert why == "" and labels.tolist() == actions[23:27].tolist()
    labels, why = true_actions(window(source, 2.0, 3), frames=5, fps=FPS)
    assert labels is None and "no action log for" in why
    pq.write_table(pa.table({"uri": ["game.mp4"]}), manifest)
    assert manifest_column(str(manifest), "actions_uri") == {}


@pytest.mark.parametrize(
    "columns, why",
    [
        ({"time_s": [0.0, 0.1, 0.2], "action": [0, -1, 2]}, "must be in [0, 65536), got -1"),
        ({"time_s": [0.0, 0.1, 0.2], "action": [0, 2**40, 2]}, "got 1099511627776"),
        ({"time_s": [0.0, float("nan"), 0.2], "action": [0, 1, 2]}, "not a finite number"),
        ({"time_s": ["0.0", "0.1", "0.2"], "action": [0, 1, 2]}, "must be a number column"),
        ({"time_s": [0.0, 0.1, 0.2], "action": [0.0, 1.0, 2.0]}, "must be an integer column"),
        ({"time_s": [0.0, 0.1, 0.2], "action": [0, None, 2]}, "empty values in 'action'"),
        ({"time": [0.0, 0.1, 0.2], "action": [0, 1, 2]}, "no 'time_s' column"),
        ({"time_s": [0.0, 0.1, 0.2], "key": [0, 1, 2]}, "no 'action' column"),
        ({"time_s": pa.array([], pa.float64()), "action": pa.array([], pa.int64())}, "no rows"),
    ],
)
def test_a_log_that_breaks_the_format_says_why_and_names_the_log(tmp_path, columns, why):
    """A hostile or hand-made log (a -1 for "no input", a key code for an id, a NaN time, float
    ids) is a reason not to score, naming the log, never a crash, a huge count table or a
    silently wrong label."""
    pq.write_table(pa.table(columns), tmp_path / "game.actions.parquet")
    labels, reason = true_actions(window(str(tmp_path / "game.mp4"), 0.0, 0), frames=3, fps=FPS)
    assert labels is None
    assert why in reason and "game.actions.parquet" in reason


def test_a_log_that_is_not_parquet_says_why(tmp_path):
    (tmp_path / "game.actions.parquet").write_bytes(b"time_s,action\n0.0,1\n")
    labels, reason = true_actions(window(str(tmp_path / "game.mp4"), 0.0, 0), frames=3, fps=FPS)
    assert labels is None and "not a Parquet file" in reason


def test_an_entry_logged_twice_at_one_time_does_not_cut_the_log_short(tmp_path):
    times = np.repeat(np.arange(5) / FPS, 2)  # each entry written twice
    source = write_log(tmp_path, times, np.repeat([1, 2, 1, 2, 0], 2))
    labels, why = true_actions(window(source, 0.0, 0), frames=6, fps=FPS)
    assert why == "" and labels.tolist() == [1, 2, 1, 2, 0]


def test_held_out_windows_carry_the_logged_actions_and_the_names(tmp_path):
    clips = write_played_clips(tmp_path, 40)
    windows = labelled_windows(clips, samples=6, frames=5)
    assert windows.skipped == "" and windows.frames.shape == (6, 5, 90, 160, 3)
    for truth, cut in zip(windows.truth, heldout_windows(clips, 5, 6), strict=True):
        _, actions = played_sprite_clip(int(cut["clip_id"][4:]))
        assert truth.tolist() == actions[cut["start"] : cut["start"] + 4].tolist()
    assert windows.names == {a: n for a, n in PLAYED_NAMES.items() if a in windows.truth}
    codes = np.array([[0, 1, 2, 2]] * 6)
    scores, details = lam_alignment(FixedCodes(codes), windows)
    expected = action_alignment(codes, windows.truth)
    assert (scores["lam_nmi"], scores["lam_windows"]) == (expected.nmi, 6)
    assert details["action_map"] == action_map(codes, windows.truth, windows.names)


def test_a_held_out_clip_without_a_log_skips_the_score_and_says_why(tmp_path):
    """What eval records as `lam_nmi_skipped`, and probe-actions refuses on."""
    clips = write_played_clips(tmp_path, 40)
    first = sorted(heldout_ids(clips))[0]
    (tmp_path / f"game{int(first[4:])}.actions.parquet").unlink()
    windows = labelled_windows(clips, samples=6, frames=5)
    assert windows.truth is None
    # 2 of 40 clips are held out (1 in 20), 3 windows each: one clip's 3 lack actions
    assert windows.skipped.startswith("3 of 6 windows have no true actions: no action log for")
    scores, details = lam_alignment(FixedCodes(np.zeros((6, 4), np.int64)), windows)
    assert "lam_nmi" not in scores and scores["lam_windows"] == 6
    assert details == {"skipped": windows.skipped}


@pytest.mark.parametrize("shuffle_actions", [False, True])
def test_the_camera_motion_reference_reads_the_actions_only_where_the_frames_move_with_them(
    tmp_path, shuffle_actions
):
    """`camera_motion_nmi`: the sprite moves left, stays or moves right with each action (the
    camera move that would make it reads the opposite way), so its motion classes name the
    actions; logs of actions the frames do not show leave them nothing to name."""
    clips = write_played_clips(tmp_path, 40, shuffle_actions=shuffle_actions)
    windows = labelled_windows(clips, samples=6, frames=8)
    scores, _ = lam_alignment(FixedCodes(np.zeros((6, 7), np.int64)), windows)
    if shuffle_actions:
        assert scores["camera_motion_nmi"] < 0.3
    else:
        assert scores["camera_motion_nmi"] > 0.7
    assert scores["lam_nmi"] == 0.0  # one code for every transition tells nothing
