"""The action probe: the LAM's encoder trained with the true actions reads the actions the
frames show, and not ones they do not; the command refuses footage without action logs."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import probe_actions
from jobs.evaluation.actions import labelled_windows, lam_alignment
from jobs.evaluation.probe import LabelledClips, train_probe
from models.configs import get_preset
from pipelines.training_data import heldout_ids
from tests.clips import write_played_clips


def probe_nmi(clips: str, window: int = 2) -> float:
    data = LabelledClips.read(clips, {}, limit=64, window=window)
    assert len(data.clips) == 38 and data.without_actions == data.too_short == 0  # 2 held out
    assert data.num_actions == 3
    probe = train_probe(
        get_preset("tiny").lam, data, window=window, steps=150, progress=lambda _: None
    )
    scores, details = lam_alignment(probe, labelled_windows(clips, samples=16, frames=8))
    assert "skipped" not in details
    return scores["lam_nmi"]


@pytest.mark.parametrize("window", [2, 3])
def test_the_probe_reads_the_actions_the_frames_show(tmp_path, window):
    assert probe_nmi(write_played_clips(tmp_path, 40), window) > 0.6


def test_the_probe_finds_nothing_in_actions_the_frames_do_not_show(tmp_path):
    assert probe_nmi(write_played_clips(tmp_path, 40, shuffle_actions=True)) < 0.15


def test_the_command_refuses_training_clips_without_action_logs_before_training(tmp_path, capsys):
    clips = write_played_clips(tmp_path, 4)
    heldout = {int(clip_id[4:]) for clip_id in heldout_ids(clips)}
    for i in set(range(4)) - heldout:  # the training clips' logs only
        (tmp_path / f"game{i}.actions.parquet").unlink()
    with pytest.raises(SystemExit) as exit_info:
        probe_actions.main(["--clips", clips, "--steps", "5"])
    assert exit_info.value.code == 2
    out, error = capsys.readouterr()
    assert "no training clip" in error and "--actions" in error
    assert "loss" not in out  # refused before any training step


def test_the_command_names_a_training_clips_broken_action_log_before_training(tmp_path, capsys):
    clips = write_played_clips(tmp_path, 4)
    heldout = {int(clip_id[4:]) for clip_id in heldout_ids(clips)}
    broken = min(set(range(4)) - heldout)
    log = {"time_s": [0.0, 0.1], "action": [1, -1]}  # -1: "no input" in some recorders
    pq.write_table(pa.table(log), tmp_path / f"game{broken}.actions.parquet")
    with pytest.raises(SystemExit) as exit_info:
        probe_actions.main(["--clips", clips, "--steps", "5"])
    assert exit_info.value.code == 2
    out, error = capsys.readouterr()
    assert f"game{broken}.actions.parquet" in error and "must be in [0, 65536)" in error
    assert "loss" not in out


def test_the_command_refuses_held_out_clips_without_action_logs_before_training(tmp_path, capsys):
    clips = write_played_clips(tmp_path, 40)
    for clip_id in heldout_ids(clips):  # the held-out clips' logs only
        (tmp_path / f"game{int(clip_id[4:])}.actions.parquet").unlink()
    with pytest.raises(SystemExit) as exit_info:
        probe_actions.main(["--clips", clips, "--steps", "5"])
    assert exit_info.value.code == 2
    out, error = capsys.readouterr()
    assert "held-out windows cannot be scored" in error and "--actions" in error
    assert "loss" not in out


def test_the_command_refuses_clips_that_do_not_name_their_source(tmp_path, capsys):
    table = pq.read_table(write_played_clips(tmp_path, 4)).drop_columns(["source_uri"])
    pq.write_table(table, tmp_path / "clips" / "part-00000.parquet")
    with pytest.raises(SystemExit):
        probe_actions.main(["--clips", str(tmp_path / "clips")])
    assert "--clips" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value", [("--window", "1"), ("--steps", "0"), ("--model", "huge"), ("--samples", "-1")]
)
def test_the_command_names_a_bad_option(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit):
        probe_actions.main(["--clips", str(tmp_path), flag, value])
    assert flag in capsys.readouterr().err


def test_the_command_names_frames_longer_than_any_held_out_clip(tmp_path, capsys):
    clips = write_played_clips(tmp_path, 4)  # clips of 24 frames
    with pytest.raises(SystemExit) as exit_info:
        probe_actions.main(["--clips", clips, "--frames", "30"])
    assert exit_info.value.code == 2
    assert "--frames 30: no held-out clips of 30 frames" in capsys.readouterr().err
