"""Recordings of play sessions, in the raw-video layout curation reads."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.serving.recording import Recorder
from pipelines.video import read_frames


def frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(count)]


def test_a_recording_is_a_video_an_action_log_and_a_manifest_row(tmp_path):
    folder = tmp_path / "recordings"
    recorder = Recorder(folder)
    first = recorder.save(frames(5), [0, 3, 3, 7], ["noop", "a", "b", "c", "d", "e", "f", "g"])
    second = recorder.save(frames(3), [1, 2])
    assert first != second
    for name in (first, second):
        assert re.fullmatch(r"play-\d{8}T\d{6}Z-[0-9a-f]{8}", name)

    assert read_frames(folder / f"{first}.mp4").shape == (5, 90, 160, 3)
    log = pq.read_table(folder / f"{first}.actions.parquet")
    assert log.schema.field("time_s").type == "double" and log.schema.field("action").type == "int8"
    assert log.to_pydict() == {
        "time_s": [0.0, 0.1, 0.2, 0.3],  # frame i at i / 10 s
        "action": [0, 3, 3, 7],
        "action_name": ["noop", "c", "c", "g"],
    }
    assert pq.read_table(folder / f"{second}.actions.parquet").column_names == ["time_s", "action"]

    manifest = pq.read_table(folder / "manifest.parquet").to_pylist()
    assert [(r["uri"], r["actions_uri"], r["frames"]) for r in manifest] == [
        (f"{first}.mp4", f"{first}.actions.parquet", 5),
        (f"{second}.mp4", f"{second}.actions.parquet", 3),
    ]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.parquet"] + [f"{n}{s}" for n in (first, second)
                                for s in (".mp4", ".actions.parquet")]
    )  # fmt: skip


def test_a_recording_needs_an_action_between_each_two_frames(tmp_path):
    with pytest.raises(ValueError, match="2 frames and 2 actions"):
        Recorder(tmp_path).save(frames(2), [0, 1])
    with pytest.raises(ValueError, match="1 frames"):
        Recorder(tmp_path).save(frames(1), [])
