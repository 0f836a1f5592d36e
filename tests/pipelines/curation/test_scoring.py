"""Scoring one source into rows, and on the real local Ray cluster: every source gives one row
whatever it holds, and a worker killed mid-wave loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pyarrow.dataset as pads

import tests.curate_videos as cv
from pipelines.curation.decode import DecodeSpec
from pipelines.curation.scoring import score, score_source
from pipelines.curation.store import SCORED

SPEC = DecodeSpec(clip_frames=20, stride_frames=20)


def scoring_workers(platform) -> list[psutil.Process]:
    """The session platform's Ray workers running a scoring task now (Ray titles a busy worker
    after its task: `ray::...MapBatches(score_batch)...`); never another cluster's."""
    return [
        process
        for process in platform.ray_processes("score_batch")
        if " ".join(process.cmdline()).startswith("ray::")
    ]


def kill_one_worker_mid_task(platform, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first scoring worker seen busy for half a second."""
    while not stop.is_set() and not killed:
        busy = scoring_workers(platform)
        if busy:
            time.sleep(0.5)
            for process in busy:
                try:
                    os.kill(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(process.pid)
                return
        time.sleep(0.05)


def test_a_worker_killed_mid_wave_loses_and_duplicates_nothing(ray_cluster, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for seed in range(3):
        cv.gameplay(raw / f"game{seed}.mp4", 12.0, seed=40 + seed)
    expected = {
        row["clip_id"]
        for path in sorted(raw.iterdir())
        for row in score_source(str(path), 0, SPEC)
        if row["kind"] == "clip"
    }
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_one_worker_mid_task, args=(ray_cluster, killed, stop))
    killer.start()
    try:
        score(str(raw), str(tmp_path / "out"), SPEC, progress=lambda line: None)
    finally:
        stop.set()
        killer.join()
    assert killed, "no scoring worker was seen busy, so none was killed"
    table = pads.dataset(tmp_path / "out" / SCORED, format="parquet").to_table(
        columns=["kind", "clip_id", "source_uri", "status"]
    )
    rows = table.to_pylist()
    clips = [r["clip_id"] for r in rows if r["kind"] == "clip"]
    sources = [(Path(r["source_uri"]).name, r["status"]) for r in rows if r["kind"] == "source"]
    assert len(clips) == len(set(clips)), "a clip was written twice"
    assert set(clips) == expected, "a clip was lost"
    assert sorted(sources) == [(f"game{seed}.mp4", "scored") for seed in range(3)]


def _source_row(path: Path, spec: DecodeSpec) -> dict:
    rows = list(score_source(str(path), 0, spec))
    return rows[-1]


def test_decode_limits_bound_hostile_sources(tmp_path):
    path = cv.gameplay(tmp_path / "g.mp4", 4.5, seed=1)
    base = dict(clip_frames=20, stride_frames=20)
    row = _source_row(path, DecodeSpec(**base, max_pixels=320 * 100))
    assert (row["status"], row["reason"]) == ("rejected", "too_large")
    row = _source_row(path, DecodeSpec(**base, max_duration_s=2.0))
    assert (row["status"], row["reason"]) == ("rejected", "too_long")
    row = _source_row(path, DecodeSpec(**base, time_budget_s=1e-6))
    assert (row["status"], row["reason"]) == ("rejected", "decode_limit")
    assert "time_budget_s" in row["note"]


def test_crafted_sources_each_end_in_one_row(tmp_path):
    """Without Ray: every crafted source gives exactly one source row, never an exception."""
    game = cv.gameplay(tmp_path / "game.mkv", 4.5, seed=3)
    paths = [
        cv.truncated(tmp_path / "part.mkv", game, keep=0.6),
        cv.zero_bytes(tmp_path / "empty.mp4"),
        cv.audio_only(tmp_path / "audio.mp4", 2.0),
        tmp_path / "vanished.mp4",
    ]
    spec = DecodeSpec(clip_frames=20, stride_frames=20)
    statuses = {}
    for path in paths:
        rows = list(score_source(str(path), 0, spec))
        assert [r["kind"] for r in rows].count("source") == 1
        statuses[path.name] = (rows[-1]["status"], rows[-1]["clips"])
    assert statuses["part.mkv"] == ("scored", 1)  # the complete clip before the cut-off
    assert statuses["empty.mp4"][0] == "errored"
    assert statuses["audio.mp4"][0] == "errored"
    assert statuses["vanished.mp4"][0] == "errored"
