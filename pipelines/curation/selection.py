"""Select: thresholds over the stored scores of `scored/`, without decoding anything.

A selection is a condition over score columns: the per-filter thresholds (the default, or a
YAML of them) or an expression such as `motion > 0.02 and blur > 80`. Clip-level terms are
checked in order and the first that fails is the reject reason. Near-duplicates are found
last, among the clips that passed everything else, so a copy is only dropped in favour of a
clip that is kept. Sources whose bytes are identical to an earlier-listed source are rejected
as `duplicate_source` (their clips would carry the same ids).

Two passes over the scored shards, each shard read on its own: the first reads scores only, to
know which clips pass the clip-level terms; the near-copy pairs that `score` stored
(near_copies.py) then give each passing clip its distance to the nearest earlier passing copy
(memory: 9 bytes per scored row, plus one file of pairs at a time); the second pass writes each
shard's kept clips (with video) and rejects (without).
Outputs are replaced on every select; `summary.json`, written last by the job, marks a
complete one.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.curation.conditions import Selection
from pipelines.curation.filters.quality import QualityFilter, QualityModel
from pipelines.curation.funnel import (
    clip_funnel,
    frame_funnel,
    reject_label,
    source_funnel,
    verdict,
)
from pipelines.curation.near_copies import nearest_earlier
from pipelines.curation.store import DONE, SCORED, SPEC, ScoredStore, read_output, read_scored
from pipelines.schemas import (
    CLIPS_SCHEMA,
    DATASET_SCORES,
    ERRORS_SCHEMA,
    FEATURES,
    PIXEL_SCORES,
    REJECTS_SCHEMA,
    SCORE_COLUMNS,
    SOURCES_SCHEMA,
)
from pipelines.storage import filesystem

OUTPUTS = ("clips", "rejects", "errors", "sources")
SAMPLES_PER_REASON = 4
HISTOGRAM_SAMPLES = 200_000
KEPT = "kept"


@dataclass
class ShardOutcome:
    kept: int = 0
    rejected: int = 0
    errored: int = 0
    reasons: Counter = field(default_factory=Counter)
    per_source: dict[str, list[Any]] = field(default_factory=dict)  # uri -> [scored, kept, Counter]
    errors: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)
    digest: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)


class Selector:
    """One select over `out/scored` (see the module docstring)."""

    def __init__(
        self,
        out: str,
        selection: Selection,
        model: QualityModel | None = None,
        threads: int = 4,
    ):
        self.fs, root = filesystem(out)
        self.out, self.root = out, root.rstrip("/")
        self.selection, self.model, self.threads = selection, model, threads
        if self.fs.get_file_info(f"{self.root}/{SCORED}/{DONE}").type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"select: {out} has no scored data (run `genie curate score`)")
        self.shards = ScoredStore(out, create=False).committed_files()
        self.spec = read_output(out, f"{SCORED}/{SPEC}") or {}
        self.losers: dict[str, str] = {}  # duplicate source uri -> the uri it copies

    def run(self, progress: Callable[[str], None] = print) -> dict[str, Any]:
        sources = self._sources()
        self.losers = self._duplicate_sources(sources)
        with ThreadPoolExecutor(self.threads) as pool:
            firsts = list(pool.map(self._first_pass, self.shards))
        total = sum(len(first[0]) for first in firsts)
        distances = self._duplicates(firsts, progress)
        progress(f"[select] {len(self.shards)} shards, {total} clips pass the clip filters")
        for output in OUTPUTS:
            self.fs.delete_dir_contents(f"{self.root}/{output}", missing_dir_ok=True)
            self.fs.create_dir(f"{self.root}/{output}", recursive=True)
        stride = max(1, sum(first[1] for first in firsts) // HISTOGRAM_SAMPLES)
        with ThreadPoolExecutor(self.threads) as pool:
            outcomes = list(
                pool.map(
                    lambda args: self._second_pass(*args, stride),
                    zip(self.shards, distances, strict=True),
                )
            )
        return self._finish(sources, outcomes, progress)

    # -- sources

    def _sources(self) -> pa.Table:
        columns = ["source_index", "source_uri", "source_id", "status", "reason", "error", "note",
                   "source_bytes", "duration_s", "source_width", "source_height", "source_fps",
                   "decode_s", "shots", "short_shots", "frames_in_clips",
                   "frames_lost_to_cuts"]  # fmt: skip
        tables = [read_scored(self.fs, p, columns, "source").drop(["row"]) for p in self.shards]
        return pa.concat_tables(tables) if tables else pa.table({c: [] for c in columns})

    def _duplicate_sources(self, sources: pa.Table) -> dict[str, str]:
        """uri -> uri of the first-listed source with the same bytes (a rerun of the listing
        gives the same places, so the same copy wins)."""
        first: dict[str, str] = {}
        losers: dict[str, str] = {}
        if not len(sources):
            return losers
        listed = zip(
            sources.column("source_index").to_pylist(),
            sources.column("source_id").to_pylist(),
            sources.column("source_uri").to_pylist(),
            strict=True,
        )
        for _, source_id, uri in sorted(listed, key=lambda s: (s[0], s[2])):
            if source_id is None:
                continue
            if source_id in first:
                losers[uri] = first[source_id]
            else:
                first[source_id] = uri
        return losers

    # -- clips

    def _clip_columns(self, table: pa.Table) -> dict[str, np.ndarray]:
        columns = {
            name: table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            for name in PIXEL_SCORES + FEATURES
        }
        if self.model is not None:
            columns["quality"] = QualityFilter().score_columns(self.model, columns)
        else:
            columns["quality"] = np.full(len(table), np.nan)
        columns["duplicate"] = np.full(len(table), np.nan)
        return columns

    def _decide(self, table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Scores, the first failing clip-level term per row ("" if none), and errored rows."""
        columns = self._clip_columns(table)
        reasons = np.full(len(table), "", dtype=object)
        errored = table.column("error").is_valid().to_numpy(zero_copy_only=False)
        for term in self.selection.terms:
            failed = ~term.evaluate(columns) & (reasons == "") & ~errored
            reasons[failed] = reject_label(term)
        return columns, reasons, errored

    def _clips(self, path: str, columns: list[str]) -> pa.Table:
        """Clip rows with `columns` and `row` (their place in the shard file)."""
        table = read_scored(self.fs, path, columns, "clip")
        if self.losers:
            mask = pc.invert(pc.is_in(table.column("source_uri"), pa.array(list(self.losers))))
            table = table.filter(mask)
        return table

    def _first_pass(self, path: str) -> tuple[np.ndarray, int, int]:
        """File rows of the clips that pass every clip-level term, the shard's clip count and
        its row count."""
        table = self._clips(path, ["source_uri", "error", *PIXEL_SCORES, *FEATURES])
        _, reasons, errored = self._decide(table)
        rows = table.column("row").to_numpy()[(reasons == "") & ~errored]
        return rows, len(table), pq.read_metadata(path, filesystem=self.fs).num_rows

    def _duplicates(self, firsts: list[tuple], progress: Callable[[str], None]) -> list:
        """Per shard, each file row's distance to its nearest earlier passing near copy (None
        when the selection has no duplicate condition)."""
        if not self.selection.duplicate:
            return [None] * len(firsts)
        passing = {path: first[0] for path, first in zip(self.shards, firsts, strict=True)}
        rows = {path: first[2] for path, first in zip(self.shards, firsts, strict=True)}
        distances, stored = nearest_earlier(self.out, passing, rows)
        progress(f"[select] near copies: {stored} stored pairs")
        return [distances[path] for path in self.shards]

    def _second_pass(self, path: str, distances: np.ndarray | None, stride: int) -> ShardOutcome:
        stored = [n for n in CLIPS_SCHEMA.names if n not in (*DATASET_SCORES, "keep",
                                                              "reject_reason")]  # fmt: skip
        table = self._clips(path, [*stored, "error"])
        columns, reasons, errored = self._decide(table)
        if distances is not None:
            passing = (reasons == "") & ~errored
            columns["duplicate"][passing] = distances[table.column("row").to_numpy()[passing]]
        for term in self.selection.duplicate:
            failed = ~term.evaluate(columns) & (reasons == "") & ~errored
            reasons[failed] = "duplicate"
        keep = (reasons == "") & ~errored
        outcome = ShardOutcome(kept=int(keep.sum()), errored=int(errored.sum()))
        outcome.rejected = len(table) - outcome.kept - outcome.errored
        scored = table.drop([c for c in SCORE_COLUMNS if c in table.column_names] + ["error"])
        for name in SCORE_COLUMNS:
            scored = scored.append_column(name, pa.array(columns[name], pa.float32()))
        reason_text = np.where(keep, "", reasons).astype(str)
        scored = scored.append_column("keep", pa.array(keep)).append_column(
            "reject_reason", pa.array(reason_text, pa.string())
        )
        name = path.rsplit("/", 1)[1]
        kept_table = scored.filter(pa.array(keep)).select(CLIPS_SCHEMA.names).cast(CLIPS_SCHEMA)
        if len(kept_table):
            target = f"{self.root}/clips/{name}"
            pq.write_table(kept_table, target, filesystem=self.fs, row_group_size=1024)
            size = self.fs.get_file_info(target).size
            outcome.files.append({"path": f"clips/{name}", "rows": len(kept_table), "bytes": size})
            for clip in kept_table.column("clip_id").to_pylist():
                outcome.digest += _id_hash(clip)
        rejected_mask = ~keep & ~errored
        if rejected_mask.any():
            rejects = scored.filter(pa.array(rejected_mask))
            rejects = rejects.append_column("level", pa.array(["clip"] * len(rejects)))
            rejects = rejects.append_column("detail", pa.nulls(len(rejects), pa.string()))
            rejects = rejects.select(REJECTS_SCHEMA.names).cast(REJECTS_SCHEMA)
            pq.write_table(rejects, f"{self.root}/rejects/{name}", filesystem=self.fs)
        self._tally(table, keep, reasons, errored, columns, stride, outcome)
        return outcome

    def _tally(self, table, keep, reasons, errored, columns, stride, outcome) -> None:
        """Counts per reason and per source, error rows, samples for the contact sheet."""
        uris = table.column("source_uri").to_pylist()
        ids = table.column("clip_id").to_pylist()
        error_text = table.column("error").to_pylist()
        source_ids = table.column("source_id").to_pylist()
        videos = table.column("video")
        for i, uri in enumerate(uris):
            entry = outcome.per_source.setdefault(uri, [0, 0, Counter()])
            entry[0] += 1
            if keep[i]:
                entry[1] += 1
                label = KEPT
            elif errored[i]:
                entry[2]["error"] += 1
                outcome.errors.append(
                    {"level": "clip", "source_uri": uri, "source_id": source_ids[i],
                     "clip_id": ids[i], "error": error_text[i]}
                )  # fmt: skip
                continue
            else:
                entry[2][reasons[i]] += 1
                outcome.reasons[reasons[i]] += 1
                label = reasons[i]
            picked = outcome.samples.setdefault(label, [])
            if len(picked) < SAMPLES_PER_REASON and videos[i].is_valid:
                picked.append((ids[i], videos[i].as_py()))
        usable = ~errored
        for name in SCORE_COLUMNS:
            outcome.scores[name] = [columns[name][usable][::stride]]

    # -- sources and totals

    def _finish(
        self, sources: pa.Table, outcomes: list[ShardOutcome], progress: Callable[[str], None]
    ) -> dict[str, Any]:
        per_source: dict[str, list[Any]] = {}
        reasons: Counter = Counter()
        errors: list[dict[str, Any]] = []
        for outcome in outcomes:
            reasons.update(outcome.reasons)
            errors += outcome.errors
            for uri, (scored, kept, why) in outcome.per_source.items():
                entry = per_source.setdefault(uri, [0, 0, Counter()])
                entry[0] += scored
                entry[1] += kept
                entry[2].update(why)
        verdicts, source_rejects = [], []
        rows = sources.to_pylist()
        for row in rows:
            uri = row["source_uri"]
            scored, kept, why = per_source.get(uri, [0, 0, Counter()])
            final, reason, detail = verdict(row, scored, kept, why, self.losers.get(uri))
            if final == "errored" and row["status"] == "errored":
                errors.append({"level": "source", "source_uri": uri,
                               "source_id": row.get("source_id"), "clip_id": None,
                               "error": row["error"]})  # fmt: skip
            if final == "rejected" and scored == 0:
                source_rejects.append(
                    {"level": "source", "source_uri": uri, "source_id": row.get("source_id"),
                     "reject_reason": reason, "detail": detail}
                )  # fmt: skip
            verdicts.append(
                {**{k: row.get(k) for k in SOURCES_SCHEMA.names}, "verdict": final,
                 "reason": reason, "clips_scored": scored, "clips_kept": kept,
                 "note": row.get("note") or (detail if final != "accepted" else None)}
            )  # fmt: skip
        self._write("sources", verdicts, SOURCES_SCHEMA)
        self._write("errors", errors, ERRORS_SCHEMA)
        if source_rejects:
            self._write("rejects", source_rejects, REJECTS_SCHEMA, name="part-sources.parquet")
        counts = Counter(v["verdict"] for v in verdicts)
        digest = sum(o.digest for o in outcomes) % (1 << 128)
        clips_scored = sum(o.kept + o.rejected + o.errored for o in outcomes)
        kept = sum(o.kept for o in outcomes)
        manifest = {
            "files": [f for o in outcomes for f in o.files],
            "clips": kept,
            "clip_set_digest": f"{digest:032x}",
            "columns": CLIPS_SCHEMA.names,
        }
        progress(
            f"[select] {kept} of {clips_scored} clips kept; entries: {counts['accepted']} "
            f"accepted, {counts['rejected']} rejected, {counts['errored']} errored, "
            f"{counts['skipped']} skipped"
        )
        samples: dict[str, list[tuple[str, bytes]]] = {}
        for outcome in outcomes:
            for label, picked in outcome.samples.items():
                room = SAMPLES_PER_REASON - len(samples.setdefault(label, []))
                samples[label] += picked[:room]
        scores = {
            name: np.concatenate([a for o in outcomes for a in o.scores.get(name, [])] or [[]])
            for name in SCORE_COLUMNS
        }
        return {
            "sources": source_funnel(verdicts),
            "clips": clip_funnel(
                self.selection, clips_scored, reasons, sum(o.errored for o in outcomes)
            ),
            "footage": frame_funnel(rows, kept, self.spec),
            "selection": self.selection.text,
            "manifest": manifest,
            "dataset_version": dataset_version(manifest),
            "samples": samples,
            "scores": scores,
        }

    def _write(
        self, output: str, rows: list[dict], schema: pa.Schema, name: str = "part-0.parquet"
    ) -> None:
        table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema)
        pq.write_table(table, f"{self.root}/{output}/{name}", filesystem=self.fs)


def _id_hash(clip_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(clip_id.encode(), digest_size=16).digest(), "little")


def dataset_version(manifest: dict[str, Any]) -> str:
    """Hash of what the output holds (the set of kept clip ids and the columns), not of how it is
    sharded: the same curation gives the same version, however the run was split or resumed."""
    key = f"{manifest['clip_set_digest']}:{manifest['clips']}:{','.join(manifest['columns'])}"
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
