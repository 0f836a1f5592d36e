"""`genie record coinrun`: real procgen CoinRun frames with an action log evaluation can read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from jobs.evaluation.actions import true_actions
from jobs.record import DEFAULT_VENV
from jobs.record import main as record
from pipelines.video import read_frames

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two recordings of the same two 3-second segments, by one process and by two (the
    recorder's environment is the one `make recorder` creates; `make test` creates it first)."""
    folders = [tmp_path_factory.mktemp(f"coinrun{i}") for i in range(2)]
    for workers, folder in enumerate(folders, start=1):
        argv = ["coinrun", "--out", str(folder), "--segments", "2", "--seconds", "3", "--seed", "7"]
        assert record([*argv, "--workers", str(workers), "--venv", str(DEFAULT_VENV)]) == 0
    return folders


def test_recording_is_video_plus_one_action_a_frame_in_the_raw_layout(recorded):
    folder = recorded[0]
    manifest = pq.read_table(folder / "manifest.parquet").to_pylist()
    assert len(manifest) == 2 and manifest[0]["game"] == "coinrun"
    frames = read_frames(manifest[0]["uri"])
    assert frames.shape == (30, 90, 160, 3) and frames.std() > 10  # a real, textured game frame
    log = pq.read_table(manifest[0]["actions_uri"]).to_pydict()
    assert log["time_s"] == [i / 10 for i in range(30)]
    assert set(log["action"]) <= set(range(6))
    names = dict(zip(log["action"], log["action_name"], strict=True))
    assert {names[a] for a in names} <= {"noop", "left", "right", "jump", "left+jump", "right+jump"}


def test_same_seed_same_bytes_with_one_process_or_two(recorded):
    first, second = ({p.name: p.read_bytes() for p in f.glob("coinrun-*")} for f in recorded)
    assert len(first) == 4 and first == second


def test_evaluation_labels_the_recording_with_its_true_actions(recorded):
    manifest = pq.read_table(recorded[0] / "manifest.parquet").to_pylist()[0]
    log = pq.read_table(manifest["actions_uri"]).column("action").to_numpy()
    window = {"source_uri": manifest["uri"], "start_s": 1.0, "start": 2}
    labels, why = true_actions(window, frames=10)
    assert why == "" and np.array_equal(labels, log[12:21])


def test_ctrl_c_stops_every_recorder_process_and_keeps_what_was_finished(tmp_path):
    """Ctrl-C in a terminal reaches `genie record`, the recorder and its workers at once: no
    process may outlive it, and the next run records only what is missing."""
    out = tmp_path / "raw"
    argv = ["coinrun", "--out", str(out), "--segments", "6", "--seconds", "8", "--seed", "3",
            "--workers", "2", "--venv", str(DEFAULT_VENV)]  # fmt: skip
    genie = subprocess.Popen(
        [sys.executable, "-m", "jobs.record", *argv], start_new_session=True, text=True,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert "[1/6]" in genie.stdout.readline()  # a segment is finished, the others under way
    processes = psutil.Process(genie.pid).children(recursive=True)
    assert len(processes) >= 3  # the recorder and its two workers
    os.killpg(genie.pid, signal.SIGINT)
    genie.communicate(timeout=60)
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert alive == [], f"still running after Ctrl-C: {[p.cmdline() for p in alive]}"
    finished = {p.name for p in out.glob("coinrun-3-*.mp4")}
    assert 1 <= len(finished) < 6 and not (out / "manifest.parquet").exists()
    assert record(argv) == 0
    assert len(pq.read_table(out / "manifest.parquet")) == 6
