"""The near-copy search on the real local Ray cluster: it finds every planted copy, what one task
holds stays flat as the scored data grows, and select re-thresholds from the stored pairs."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.benchmarks.curate_dedup import synthetic_scored
from pipelines.curation.conditions import Selection, parse_where
from pipelines.curation.filters.duplicate import TABLES
from pipelines.curation.near_copies import find_near_copies
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
        assert marker["pairs"] == made["copies"] == 50 * scale
        assert marker["table_rows"] == 2000 * scale * TABLES
        result = select(out, "duplicate >= 16")
        assert result["clips"]["reject_reasons"] == {"duplicate": made["copies"]}
        found[scale] = marker
    assert found[4]["partitions"] == 4 * found[1]["partitions"]
    held = found[4]["largest_partition_rows"] / found[1]["largest_partition_rows"]
    assert held < 1.25, found  # a single partition would hold 4x as much
    assert found[4]["largest_partition_mb"] < 1.25 * found[1]["largest_partition_mb"]


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
