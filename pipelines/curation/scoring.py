"""Score: raw videos -> `scored/` (every clip with every pixel score, one row per source), on Ray Data.

Sources are listed as a stream and processed in waves of `wave_sources`. A wave is one Ray Data
pipeline: one source per task (`map_batches(batch_size=1)`), each task decoding, scoring and
encoding its clips as a generator so memory stays flat however long the source, then
`write_parquet` into a staging folder. When the wave's write finishes, its files are moved into
`scored/` and a completion marker (`scored/_done/<wave>.json`) naming its sources is written.

A killed run is rerun with the same output path: staging leftovers and any file whose wave has
no marker are deleted, sources named by a marker are skipped, and the rest are scored again.
Clip ids are a hash of the source's content id and the clip's start, so a rerun gives the same
ids and no duplicates.

Every entry of the listing gets exactly one source row. An entry the listing left out (not a
video, hidden, a FIFO, a symlink loop, ...) is written by the driver as `skipped` with the
reason, without a task. Bad input never fails the job: a source that cannot be opened or decoded
becomes `errored` with the error text; one refused by a rule (too large, too long, too short,
shots all shorter than a clip) becomes `rejected` with the reason. A task that dies outright (a
crash in FFmpeg, the OOM killer) drops its block; the wave notices the missing source and
records it as errored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import resource
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.curation.decode import (
    Clip,
    ClipDecoder,
    DecodeSpec,
    NoVideoStream,
    SourceRejected,
    UnsupportedContainer,
)
from pipelines.curation.filters import score_clip
from pipelines.curation.filters.too_short import TooShortFilter
from pipelines.curation.near_copies import (
    find_near_copies,
    is_current,
    near_copies_marker,
    rows_of_shards,
)
from pipelines.curation.sources import Entry, NotARegularFile, iter_entries, local_copy
from pipelines.curation.store import SCORED, SPEC, STAGING, ScoredStore, check_spec, write_output
from pipelines.schemas import FEATURES, PIXEL_SCORES, SCORED_SCHEMA, SOURCE_STATUS
from pipelines.video import encode_mp4

CRASHED = "the decoding task died (worker crash or out of memory); see the Ray worker logs"


def clip_id(source_id: str, start_frame: int, spec: DecodeSpec) -> str:
    """Stable id: the same source content and start always give the same id."""
    key = f"{source_id}:{start_frame}:{spec.clip_frames}:{spec.fps}:{spec.width}x{spec.height}"
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def wave_id(uris: list[str]) -> str:
    return hashlib.blake2b("\n".join(uris).encode(), digest_size=8).hexdigest()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


def _error_reason(error: BaseException, source: dict[str, Any]) -> str:
    """A short class of error for the funnel; the full text stays in the row."""
    if isinstance(error, NoVideoStream):
        return "no_video_stream"
    if isinstance(error, UnsupportedContainer):
        return "unsupported_container"
    if isinstance(error, NotARegularFile):
        return "not_a_regular_file"
    if "source_id" not in source:
        return "unreadable_file"  # missing, unreadable, or vanished while listing
    if "source_width" not in source:
        return "empty_file" if source.get("source_bytes") == 0 else "cannot_open"
    return "decode_error"


def score_source(uri: str, index: int, spec: DecodeSpec) -> Iterator[dict[str, Any]]:
    """Rows for one source: one per clip, then one for the source itself (always, last).

    `index` is the source's place in the listing (which copy of a duplicate comes first). The
    time budget covers reading, decoding, scoring and encoding."""
    started = time.monotonic()
    source: dict[str, Any] = {
        "kind": "source",
        "source_uri": uri,
        "source_index": index,
        "clips": 0,
    }
    try:
        with local_copy(uri, deadline=started + spec.time_budget_s) as (source_id, path):
            source["source_id"] = source_id
            source["source_bytes"] = os.path.getsize(path)
            with ClipDecoder(path, spec, started=started) as decoder:
                source.update(
                    source_width=decoder.width,
                    source_height=decoder.height,
                    source_fps=decoder.source_fps,
                )
                try:
                    for clip in decoder.clips():
                        yield _clip_row(source, clip, decoder, spec)
                        source["clips"] += 1
                except Exception as error:  # corrupt data mid-stream: keep the clips before it
                    if source["clips"] == 0:
                        raise
                    decoder.note = f"decoding stopped early: {_error_text(error)}"
                source.update(
                    duration_s=decoder.decoded_s,
                    frames_decoded=decoder.frames_decoded,
                    note=decoder.note,
                    shots=decoder.shots,
                    short_shots=decoder.short_shots,
                    frames_in_clips=decoder.frames_in_clips,
                    frames_lost_to_cuts=spec.frames_in_clips(decoder.output_frames)
                    - decoder.frames_in_clips,
                )
                if source["clips"] > 0:
                    source["status"] = "scored"
                elif decoder.note:
                    source.update(status="rejected", reason="decode_limit")
                elif decoder.output_frames >= spec.clip_frames:
                    source.update(
                        status="rejected",
                        reason="short_shots",
                        note=f"{decoder.shots} shots between {decoder.cuts} cuts, none as long "
                        f"as a clip ({spec.clip_seconds:g} s)",
                    )
                else:
                    source.update(
                        status="rejected",
                        reason=TooShortFilter.name,
                        note=f"{decoder.decoded_s:.1f} s decoded, a clip needs "
                        f"{spec.clip_seconds:g} s",
                    )
    except SourceRejected as rejected:
        source.update(status="rejected", reason=rejected.reason, note=rejected.detail)
    except TimeoutError:  # the budget ran out while reading the bytes
        note = f"stopped after time_budget_s={spec.time_budget_s:g} while reading the file"
        source.update(status="rejected", reason="decode_limit", note=note)
    except Exception as error:  # anything PyAV or the filesystem raises: the source errored
        source.update(
            status="errored", reason=_error_reason(error, source), error=_error_text(error)
        )
    source.update(decode_s=time.monotonic() - started, worker_peak_rss_mb=_peak_rss_mb())
    yield source


def _clip_row(
    source: dict[str, Any], clip: Clip, decoder: ClipDecoder, spec: DecodeSpec
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": "clip",
        "clip_id": clip_id(source["source_id"], clip.start_frame, spec),
        "source_uri": source["source_uri"],
        "source_id": source["source_id"],
        "source_index": source["source_index"],
        "start_s": clip.start_s(spec.fps),
        "num_frames": len(clip.frames),
        "fps": spec.fps,
        "height": spec.height,
        "width": spec.width,
    }
    try:
        row.update(score_clip(clip.frames, decoder.width, decoder.height, clip.histograms))
        row["video"] = encode_mp4(clip.frames, spec.fps, crf=spec.crf)
    except Exception as error:  # a filter that cannot decide says so; select reports the row
        row.update({name: float("nan") for name in PIXEL_SCORES + FEATURES})
        row["phash"], row["video"] = None, None
        row["error"] = f"scoring failed: {_error_text(error)}"
    return row


def score_batch(batch: pa.Table, spec: DecodeSpec) -> Iterator[pa.Table]:
    """map_batches step (batch_size=1): stream the rows of each source as small tables."""
    for uri, index in zip(
        batch.column("uri").to_pylist(), batch.column("index").to_pylist(), strict=True
    ):
        for row in score_source(uri, index, spec):
            yield pa.Table.from_pylist([row], schema=SCORED_SCHEMA)


NEAR_COPY_LISTS = ("tables", "shards", "shard_rows")  # in the marker, too long for a report


@dataclass
class ScoreReport:
    """What one `score` invocation did (a resumed run counts only its own work)."""

    entries_done_before: int = 0  # finished by an earlier run
    entries: int = 0
    clips: int = 0
    waves: int = 0
    seconds: float = 0.0
    cpus: float = 0.0
    status_counts: dict[str, int] = field(default_factory=dict)
    near_copies: dict[str, Any] | None = None  # the near-copy search, when this run redid it

    def as_dict(self) -> dict[str, Any]:
        per_s = self.clips / self.seconds if self.seconds else 0.0
        return {
            "entries_done_before": self.entries_done_before,
            "entries_listed": self.entries,
            "clips_scored": self.clips,
            "waves": self.waves,
            "seconds": round(self.seconds, 2),
            "cluster_cpus": self.cpus,
            "clips_per_s": round(per_s, 3),
            "clips_per_s_per_core": round(per_s / self.cpus, 3) if self.cpus else 0.0,
            "source_status": dict(self.status_counts),
            # the search's figures; its table bits and shard list are in its marker, not in logs
            "near_copies": self.near_copies
            and {k: v for k, v in self.near_copies.items() if k not in NEAR_COPY_LISTS}
            | {"shards": len(self.near_copies["shards"])},
        }


Listed = tuple[int, Entry]  # (place in the listing, entry)


def _waves(
    entries: Iterable[Entry], size: int, done: set[str], report: ScoreReport
) -> Iterator[list[Listed]]:
    """Batches of unfinished entries, each with its place in the full listing (stable across
    reruns). A manifest row naming a file an earlier row named is skipped as `listed_twice`."""
    seen: set[str] = set()
    wave: list[Listed] = []
    for index, entry in enumerate(entries):
        if entry.uri in seen and not entry.skipped:
            entry = Entry(f"{entry.uri}#listing={index}", "listed_twice", entry.uri)
        if entry.uri in done:
            report.entries_done_before += 1
            continue
        seen.add(entry.uri)
        wave.append((index, entry))
        if len(wave) == size:
            yield wave
            wave = []
    if wave:
        yield wave


def _source_rows(listed: list[Listed], status: str, **fields: Any) -> pa.Table:
    """Source rows the driver writes itself (skipped entries, tasks that died)."""
    rows = [
        {"kind": "source", "source_uri": entry.uri, "source_index": index, "status": status,
         "reason": fields.get("reason", entry.skipped), "note": entry.note or None,
         "error": fields.get("error"), "clips": 0}
        for index, entry in listed
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=SCORED_SCHEMA)


def run_wave(
    store: ScoredStore, listed: list[Listed], spec: DecodeSpec, shard_rows: int
) -> dict[str, int]:
    """Score one wave of entries on Ray Data and commit it. Returns status and clip counts."""
    import ray.data

    uris = [entry.uri for _, entry in listed]
    wave = wave_id(uris)
    # Per run: a task of a killed run still writing cannot land in this run's staging.
    staging = f"{store.root}/{STAGING}/{store.run}/{wave}"
    sources = [(index, entry) for index, entry in listed if not entry.skipped]
    skipped = [(index, entry) for index, entry in listed if entry.skipped]
    if sources:
        items = ray.data.from_items(
            [{"uri": entry.uri, "index": index} for index, entry in sources],
            override_num_blocks=len(sources),
        )
        with warnings.catch_warnings():
            # Ray Data retries a dead task forever by default; a file that crashes FFmpeg would
            # hang the job. `max_retries` has no named parameter yet (deprecated as a remote arg
            # in Ray 2.64), so the deprecation warning is silenced here only.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            rows = items.map_batches(
                score_batch,
                batch_size=1,
                batch_format="pyarrow",
                fn_kwargs={"spec": spec},
                num_cpus=1,
                max_retries=1,
            )
        # The write stage only moves bytes: asking a core for it made Ray Data reserve one
        # and run the decoding tasks of a 2-core node one at a time.
        rows.write_parquet(
            store.uri(staging),
            min_rows_per_file=shard_rows,
            row_group_size=1024,
            ray_remote_args={"num_cpus": 0},
        )
    counts = _staged_counts(store, staging)
    finished = counts.pop("_sources")
    missing = [(index, entry) for index, entry in sources if entry.uri not in finished]
    driver_rows = []
    if missing:  # the task died without a word: the source is errored, not lost
        driver_rows.append(_source_rows(missing, "errored", reason="worker_died", error=CRASHED))
        counts["errored"] = counts.get("errored", 0) + len(missing)
    if skipped:
        driver_rows.append(_source_rows(skipped, "skipped"))
        counts["skipped"] = len(skipped)
    if driver_rows:
        store.fs.create_dir(staging, recursive=True)
        with store.fs.open_output_stream(f"{staging}/listing.parquet") as handle:
            pq.write_table(pa.concat_tables(driver_rows), handle)
    store.commit(wave, uris, staging)
    return counts


def _staged_counts(store: ScoredStore, staging: str) -> dict[str, Any]:
    if store.fs.get_file_info(staging).type == pafs.FileType.NotFound:
        return {"_sources": set()}
    dataset = pads.dataset(staging, filesystem=store.fs, format="parquet")
    table = dataset.to_table(columns=["kind", "source_uri", "status"])
    kinds = table.column("kind").to_pylist()
    counts: dict[str, Any] = {"clips": kinds.count("clip")}
    sources = set()
    for kind, uri, status in zip(
        kinds, table.column("source_uri").to_pylist(), table.column("status").to_pylist(),
        strict=True,
    ):  # fmt: skip
        if kind == "source":
            sources.add(uri)
            counts[status] = counts.get(status, 0) + 1
    counts["_sources"] = sources
    return counts


def score(
    source: str,
    out: str,
    spec: DecodeSpec,
    wave_sources: int = 512,
    shard_rows: int = 8000,
    progress: Callable[[str], None] = print,
) -> ScoreReport:
    """Score every entry of `source` not already finished under `out`."""
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.max_errored_blocks = -1  # a task that dies loses one source, never the job
    check_spec(out, spec)
    store = ScoredStore(out)
    write_output(out, f"{SCORED}/{SPEC}", dataclasses.asdict(spec))
    done = store.recover()
    report = ScoreReport(cpus=float(ray.cluster_resources().get("CPU", os.cpu_count() or 1)))
    started = time.monotonic()
    for listed in _waves(iter_entries(source), wave_sources, done, report):
        counts = run_wave(store, listed, spec, shard_rows)
        report.waves += 1
        report.entries += len(listed)
        report.clips += counts.get("clips", 0)
        for status in SOURCE_STATUS:
            report.status_counts[status] = report.status_counts.get(status, 0) + counts.get(
                status, 0
            )
        elapsed = time.monotonic() - started
        progress(
            f"[score] wave {report.waves}: {len(listed)} entries -> {counts.get('clips', 0)} clips "
            f"({report.entries} entries, {report.clips} clips this run, "
            f"{report.clips / max(elapsed, 1e-9):.2f} clips/s)"
        )
    shards = store.committed_files()
    if not is_current(near_copies_marker(out), shards, rows_of_shards(store.fs, shards)):
        report.near_copies = find_near_copies(out, progress=progress)
    report.seconds = time.monotonic() - started
    if report.entries_done_before:
        progress(f"[score] {report.entries_done_before} entries were finished by an earlier run")
    return report
