"""Held-out windows of curated clips and token shards (pipelines/training_data.py), without Ray."""

from __future__ import annotations

from pipelines.training_data import heldout_ids, heldout_windows
from tests.clips import write_token_shards


def test_heldout_windows_are_never_repeated_to_fill_the_count(tmp_path):
    """Two held-out clips of window + 1 frames hold 4 distinct windows: asked for 10, they give
    those 4, spread over both clips, and no window twice."""
    window = 4
    data = str(write_token_shards(tmp_path / "tokens", count=40, frames=window + 1))
    heldout = heldout_ids(data)
    assert heldout is not None and len(heldout) == 2  # 1 in 20 of 40 clips

    windows = heldout_windows(data, window, count=10)

    assert len(windows) == 4
    assert {w["clip_id"] for w in windows} == heldout
    cuts = [(w["clip_id"], w["start"]) for w in windows]
    assert len(set(cuts)) == len(cuts), cuts
    contents = {w["tokens"].tobytes() for w in windows}
    assert len(contents) == len(windows)
    for w in windows:  # each is the window its clip and start name
        assert w["tokens"].shape == (window, 2, 3) and w["actions"].shape == (window - 1,)
        assert int(w["tokens"][0, 0, 0]) == int(w["clip_id"][4:]) * 100 + w["start"]
