"""Held-out windows of curated clips and token shards (pipelines/training_data.py), without Ray."""

from __future__ import annotations

import pytest

from pipelines import training_data
from pipelines.training_data import heldout_ids, heldout_predicate, heldout_windows
from tests.clips import write_token_shards


def sources_of(heldout: set[str], sources: list[int]) -> set[int]:
    return {sources[int(clip_id[4:])] for clip_id in heldout}


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


def test_held_out_clips_share_no_source_video_with_training_clips(tmp_path):
    """Two clips cut from one recording show the same level: holding out one and training on
    the other would score the model on footage it has seen. Whole sources are held out."""
    sources = [i // 5 for i in range(50)]  # 10 videos of 5 clips, as the built-in demo's
    data = str(write_token_shards(tmp_path / "tokens", count=50, frames=4, sources=sources))
    heldout = heldout_ids(data)
    held_sources = sources_of(heldout, sources)
    training = {f"clip{i:03d}" for i in range(50)} - heldout
    assert len(heldout) >= 2 and held_sources.isdisjoint(sources_of(training, sources))
    assert len(heldout) == 5 * len(held_sources)  # whole videos


@pytest.mark.parametrize(
    "sources, why",
    [
        ([0] * 40, "one long video: single clips are held out, not the only video"),
        ([0] * 30 + list(range(1, 11)), "the 30-clip video would hold out 3 in 4 clips"),
    ],
)
def test_a_source_too_large_to_hold_out_is_passed_over(tmp_path, sources, why):
    data = str(write_token_shards(tmp_path / "tokens", count=40, frames=4, sources=sources))
    heldout = heldout_ids(data)
    assert 2 <= len(heldout) <= 8, why  # 1 in 20 at least, 1 in 5 at most
    assert len(heldout) < sources.count(0), why


def test_large_data_holds_out_by_the_hash_of_the_source(tmp_path, monkeypatch):
    monkeypatch.setattr(training_data, "SMALL_DATASET", 0)  # every dataset counts as large
    data = str(write_token_shards(tmp_path / "tokens", count=4, frames=4, sources=[0, 0, 1, 1]))
    assert heldout_ids(data) is None
    is_heldout = heldout_predicate(data)
    rows = [{"clip_id": f"clip{i:05d}", "source_id": f"source{i // 3}"} for i in range(3000)]
    held = {row["source_id"] for row in rows if is_heldout(row)}
    kept = {row["source_id"] for row in rows if not is_heldout(row)}
    assert held.isdisjoint(kept)  # every clip of a source goes one way
    assert 0.03 < len(held) / 1000 < 0.07  # about 1 in 20 of the 1,000 videos


def test_every_clip_of_an_unseen_corpus_can_be_scored(tmp_path):
    data = str(write_token_shards(tmp_path / "tokens", count=40, frames=4))
    windows = heldout_windows(data, window=4, count=100, every_clip=True)
    assert sorted(w["clip_id"] for w in windows) == [f"clip{i:03d}" for i in range(40)]
