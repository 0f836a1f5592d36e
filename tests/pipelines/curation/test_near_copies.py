"""The near-copy search on the real local Ray cluster: it finds every planted copy, what one task
holds stays flat as the scored data grows, and select re-thresholds from the stored pairs."""

from __future__ import annotations

import numpy as np
import pyarrow.dataset as pads
import pytest

from jobs.benchmarks.curate_dedup import synthetic_scored
from pipelines.curation.conditions import Selection, parse_where
from pipelines.curation.filters.duplicate import TABLES
from pipelines.curation.near_copies import EDGE_SCHEMA, NEAR_COPIES, find_near_copies
from pipelines.curation.selection import Selector
from pipelines.curation.store import SCORED

ROWS_PER_PARTITION = 16_000  # 500 clips' table rows: small data, several partitions


def select(out, where: str) -> dict:
    selection = Selection.of(parse_where(where), with_quality=False)
    return Selector(str(out), selection).run(progress=lambda _: None)


def test_every_planted_copy_is_found_and_each_task_holds_as_much_at_4x_input(ray_cluster, tmp_path):
    found = {}
    for scale in (1, 4):
        out = tmp_path / f"x{scale}"
        made = synthetic_scored(out, 2000 * scale, copy_every=20, shard_rows=1000, max_bits=12)
        marker = find_near_copies(str(out), ROWS_PER_PARTITION, progress=lambda _: None)
        assert marker["edges"] >= made["copies"] == 50 * scale  # a pair from each shared table
        assert marker["table_rows"] == 2000 * scale * TABLES
        result = select(out, "duplicate >= 16")
        assert result["clips"]["reject_reasons"] == {"duplicate": made["copies"]}
        found[scale] = marker
    assert found[4]["partitions"] == 4 * found[1]["partitions"]
    held = found[4]["largest_bucket_rows"] / found[1]["largest_bucket_rows"]
    assert held < 1.25, found  # a single bucket would hold 4x as much
    assert found[4]["largest_bucket_mb"] < 1.25 * found[1]["largest_bucket_mb"]


def test_select_rethresholds_from_the_stored_pairs_and_refuses_stale_ones(ray_cluster, tmp_path):
    out = tmp_path / "scored"
    made = synthetic_scored(out, 1000, copy_every=10, shard_rows=500, max_bits=12)
    find_near_copies(str(out), ROWS_PER_PARTITION, progress=lambda _: None)
    rejected = [
        select(out, f"duplicate >= {bits}")["clips"]["reject_reasons"].get("duplicate", 0)
        for bits in (1, 8, 16)
    ]
    assert rejected[0] == 0 and 0 < rejected[1] < rejected[2] == made["copies"]
    # another wave lands after the search: its clips are in no stored pair
    late = synthetic_scored(tmp_path / "more", 500, shard_rows=500, seed=1, max_bits=12)
    (tmp_path / "more" / SCORED / "part-synthetic00000-0000.parquet").rename(
        out / SCORED / "part-late-0000.parquet"
    )
    (out / SCORED / "_done" / "late.json").write_text(
        '{"wave": "late", "files": ["part-late-0000.parquet"], "sources": []}'
    )
    with pytest.raises(FileNotFoundError, match="genie curate score"):
        select(out, "duplicate >= 16")
    assert select(out, "blank >= 0")["clips"]["scored"] == 1500  # no duplicate term: no pairs
    assert np.isfinite(find_near_copies(str(out), progress=lambda _: None)["seconds"])
    assert select(out, "duplicate >= 16")["clips"]["reject_reasons"] == {
        "duplicate": made["copies"] + late["copies"]
    }


def test_the_ray_search_and_the_in_process_one_store_the_same_pairs(ray_cluster, tmp_path):
    def pairs(out) -> set:
        edges = pads.dataset(out / SCORED / NEAR_COPIES, format="parquet").to_table()
        rows = zip(*(edges.column(c).to_pylist() for c in EDGE_SCHEMA.names), strict=True)
        return {(*row[:4],): row[4] for row in rows}

    out = tmp_path / "scored"
    synthetic_scored(out, 1500, copy_every=10, shard_rows=500, max_bits=12)
    assert find_near_copies(str(out), ROWS_PER_PARTITION, progress=lambda _: None)["partitions"] > 1
    spread = pairs(out)
    assert find_near_copies(str(out), progress=lambda _: None)["partitions"] == 1
    assert pairs(out) == spread and len(spread) >= 75


def test_a_marker_cut_short_reads_as_stale(ray_cluster, tmp_path):
    out = tmp_path / "scored"
    synthetic_scored(out, 300, shard_rows=300)
    find_near_copies(str(out), progress=lambda _: None)
    marker = out / SCORED / NEAR_COPIES / "_done.json"
    marker.write_text(marker.read_text()[:40])  # a killed run's half-written marker
    with pytest.raises(FileNotFoundError, match="genie curate score"):
        select(out, "duplicate >= 16")
