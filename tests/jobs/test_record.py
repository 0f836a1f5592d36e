"""`genie record coinrun`: real procgen CoinRun frames with an action log evaluation can read."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.evaluation.actions import true_actions
from jobs.record import DEFAULT_VENV
from jobs.record import main as record
from pipelines.video import read_frames

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two recordings of the same 3-second segment (the recorder's environment is the one
    `make recorder` creates; `make test` creates it first)."""
    folders = [tmp_path_factory.mktemp(f"coinrun{i}") for i in range(2)]
    for folder in folders:
        argv = ["coinrun", "--out", str(folder), "--segments", "1", "--seconds", "3", "--seed", "7"]
        assert record([*argv, "--venv", str(DEFAULT_VENV)]) == 0
    return folders


def test_recording_is_video_plus_one_action_a_frame_in_the_raw_layout(recorded):
    folder = recorded[0]
    manifest = pq.read_table(folder / "manifest.parquet").to_pylist()
    assert len(manifest) == 1 and manifest[0]["game"] == "coinrun"
    frames = read_frames(manifest[0]["uri"])
    assert frames.shape == (30, 90, 160, 3) and frames.std() > 10  # a real, textured game frame
    log = pq.read_table(manifest[0]["actions_uri"]).to_pydict()
    assert log["time_s"] == [i / 10 for i in range(30)]
    assert set(log["action"]) <= set(range(6))
    names = dict(zip(log["action"], log["action_name"], strict=True))
    assert {names[a] for a in names} <= {"noop", "left", "right", "jump", "left+jump", "right+jump"}


def test_same_seed_same_bytes(recorded):
    first, second = (sorted(p.read_bytes() for p in f.glob("coinrun-*")) for f in recorded)
    assert first == second


def test_evaluation_labels_the_recording_with_its_true_actions(recorded):
    manifest = pq.read_table(recorded[0] / "manifest.parquet").to_pylist()[0]
    log = pq.read_table(manifest["actions_uri"]).column("action").to_numpy()
    window = {"source_uri": manifest["uri"], "start_s": 1.0, "start": 2}
    labels, why = true_actions(window, frames=10)
    assert why == "" and np.array_equal(labels, log[12:21])
