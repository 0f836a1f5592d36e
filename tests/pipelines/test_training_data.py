"""Held-out windows of curated clips and token shards (pipelines/training_data.py), without Ray."""

from __future__ import annotations

import pyarrow.parquet as pq
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
    sources = [100 + i // 3 for i in range(300)]  # 100 videos of 3 clips: 5 hash into bucket 0
    data = str(write_token_shards(tmp_path / "tokens", count=300, frames=4, sources=sources))
    assert heldout_ids(data) is None
    is_heldout = heldout_predicate(data)
    rows = [{"clip_id": f"clip{i:03d}", "source_id": f"source{s}"} for i, s in enumerate(sources)]
    held = {row["source_id"] for row in rows if is_heldout(row)}
    kept = {row["source_id"] for row in rows if not is_heldout(row)}
    assert len(held) == 5 and held.isdisjoint(kept)  # every clip of a source goes one way


def test_every_clip_of_an_unseen_corpus_can_be_scored(tmp_path):
    data = str(write_token_shards(tmp_path / "tokens", count=40, frames=4))
    windows = heldout_windows(data, window=4, count=100, every_clip=True)
    assert sorted(w["clip_id"] for w in windows) == [f"clip{i:03d}" for i in range(40)]


def test_fewer_windows_than_clips_are_spread_over_the_dataset(tmp_path):
    """32 windows of a 40-clip corpus come from clips across it, not the first 32 read."""
    data = str(write_token_shards(tmp_path / "tokens", count=40, frames=4))
    windows = heldout_windows(data, window=4, count=8, every_clip=True)
    picked = sorted(int(w["clip_id"][4:]) for w in windows)
    assert len(set(picked)) == 8 and picked[0] == 0 and picked[-1] == 39


def test_a_spread_clip_too_short_for_a_window_gives_way_to_another(tmp_path):
    data = tmp_path / "tokens"
    write_token_shards(data, count=4, frames=4)
    write_token_shards(tmp_path / "short", count=4, frames=2)  # clip000..clip003 again, short
    (tmp_path / "short" / "part-00000.parquet").rename(data / "part-00001.parquet")
    windows = heldout_windows(str(data), window=4, count=2, every_clip=True)
    assert len(windows) == 2 and all(w["tokens"].shape[0] == 4 for w in windows)


def test_large_data_falls_back_to_clips_where_few_sources_would_hold_out_none(
    tmp_path, monkeypatch
):
    """Three long videos, none of whose ids hash into bucket 0: held out by clip, not nothing."""
    monkeypatch.setattr(training_data, "SMALL_DATASET", 0)
    sources = [i % 3 for i in range(300)]  # source0..2: buckets 7, 18, 18
    assert all(training_data.clip_hash(f"source{s}") % 20 for s in range(3))
    data = str(write_token_shards(tmp_path / "tokens", count=300, frames=4, sources=sources))
    is_heldout = heldout_predicate(data)
    rows = [{"clip_id": f"clip{i:03d}", "source_id": f"source{s}"} for i, s in enumerate(sources)]
    assert 0 < sum(map(is_heldout, rows)) <= 60  # about 1 in 20 of the clips


def test_split_note_names_data_whose_clips_record_no_source(tmp_path):
    """Token shards without `source_id` (no column, or a column of nulls: shards tokenized from
    clips curated before clips recorded it) are split clip by clip, so a held-out clip can
    share its recording with training clips: `split_note`, which each training stage logs,
    says so, naming the data and the count. Data that records every source gives no note."""
    data = write_token_shards(
        tmp_path / "new", count=40, frames=5, sources=[i // 4 for i in range(40)]
    )
    assert training_data.split_note("dynamics", str(data)) is None

    no_column = tmp_path / "no_column"
    no_column.mkdir()
    table = pq.read_table(data / "part-00000.parquet").drop_columns(["source_id"])
    pq.write_table(table, no_column / "part-00000.parquet")
    nulls = write_token_shards(tmp_path / "nulls", count=40, frames=5)
    for old in (no_column, nulls):
        note = training_data.split_note("dynamics", str(old))
        assert note is not None and note.startswith("[dynamics] 40 of 40 kept clips in ")
        assert str(old) in note and "record no source_id" in note
        held = heldout_ids(str(old))
        assert held is not None and len(held) == 2  # clip by clip: 1 in 20
