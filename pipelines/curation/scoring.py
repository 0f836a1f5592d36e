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

Bad input never fails the job: a source that cannot be opened or decoded becomes a source row
with status `errored` and the error text; one refused by a rule (no video stream, too large,
too long, too short) becomes `rejected` with the reason. A task that dies outright (a crash in
FFmpeg, the OOM killer) drops its block; the wave notices the missing source and records it
as errored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import resource
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.curation.decode import Clip, ClipDecoder, DecodeSpec, NoVideoStream, SourceRejected
from pipelines.curation.filters import score_clip
from pipelines.curation.filters.too_short import TooShortFilter
from pipelines.curation.sources import filesystem, iter_sources, local_copy
from pipelines.schemas import FEATURES, PIXEL_SCORES, SCORED_SCHEMA
from pipelines.video import encode_mp4

SCORED = "scored"
DONE = "_done"
STAGING = "_staging"
SPEC = "_spec.json"
CLIP_SHAPE = ("fps", "width", "height", "clip_frames", "stride_frames", "crf")  # fix clip ids
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
    if "source_id" not in source:
        return "unreadable_file"  # missing, unreadable, or vanished while listing
    if "source_width" not in source:
        return "empty_file" if source.get("source_bytes") == 0 else "cannot_open"
    return "decode_error"


def score_source(uri: str, index: int, spec: DecodeSpec) -> Iterator[dict[str, Any]]:
    """Rows for one source: one per clip, then one for the source itself (always, last).

    `index` is the source's place in the listing (which copy of a duplicate comes first)."""
    started = time.monotonic()
    source: dict[str, Any] = {
        "kind": "source",
        "source_uri": uri,
        "source_index": index,
        "clips": 0,
    }
    try:
        with local_copy(uri) as (source_id, path):
            source["source_id"] = source_id
            source["source_bytes"] = os.path.getsize(path)
            with ClipDecoder(path, spec) as decoder:
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
                )
                if source["clips"] > 0:
                    source["status"] = "scored"
                elif decoder.note:
                    source.update(status="rejected", reason="decode_limit")
                else:
                    source.update(
                        status="rejected",
                        reason=TooShortFilter.name,
                        note=f"{decoder.decoded_s:.1f} s decoded, a clip needs "
                        f"{spec.clip_seconds:g} s",
                    )
    except SourceRejected as rejected:
        source.update(status="rejected", reason=rejected.reason, note=rejected.detail)
    except Exception as error:  # anything PyAV or the filesystem raises: the source errored
        source.update(
            status="errored", reason=_error_reason(error, source), error=_error_text(error)
        )
    source.update(decode_s=time.monotonic() - started, worker_peak_rss_mb=_peak_rss_mb())
    yield source


def _clip_row(
    source: dict[str, Any], clip: Clip, decoder: ClipDecoder, spec: DecodeSpec
) -> dict[str, Any]:
    start_frame = clip.index * spec.stride_frames
    row: dict[str, Any] = {
        "kind": "clip",
        "clip_id": clip_id(source["source_id"], start_frame, spec),
        "source_uri": source["source_uri"],
        "source_id": source["source_id"],
        "source_index": source["source_index"],
        "start_s": clip.start_s,
        "num_frames": len(clip.frames),
        "fps": spec.fps,
        "height": spec.height,
        "width": spec.width,
    }
    try:
        row.update(score_clip(clip.frames, decoder.width, decoder.height))
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


@dataclass
class ScoreReport:
    """What one `score` invocation did (a resumed run counts only its own work)."""

    sources_skipped: int = 0  # finished by an earlier run
    sources: int = 0
    clips: int = 0
    waves: int = 0
    seconds: float = 0.0
    cpus: float = 0.0
    status_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        per_s = self.clips / self.seconds if self.seconds else 0.0
        return {
            "sources_skipped": self.sources_skipped,
            "sources_scored": self.sources,
            "clips_scored": self.clips,
            "waves": self.waves,
            "seconds": round(self.seconds, 2),
            "cluster_cpus": self.cpus,
            "clips_per_s": round(per_s, 3),
            "clips_per_s_per_core": round(per_s / self.cpus, 3) if self.cpus else 0.0,
            "source_status": dict(self.status_counts),
        }


class ScoredStore:
    """The `scored/` folder: committed shards, completion markers, staging for a running wave."""

    def __init__(self, out: str, create: bool = True):
        self.fs, root = filesystem(out)
        self.out = out.rstrip("/")
        self.root = f"{root.rstrip('/')}/{SCORED}"
        self.run = uuid.uuid4().hex[:12]
        if create:
            self.fs.create_dir(f"{self.root}/{DONE}", recursive=True)

    def uri(self, path: str) -> str:
        """`path` inside this filesystem as a URI Ray Data can write to."""
        return f"{self.out.split('://', 1)[0]}://{path}" if "://" in self.out else path

    def markers(self) -> list[dict[str, Any]]:
        infos = self.fs.get_file_info(pafs.FileSelector(f"{self.root}/{DONE}"))
        found = []
        for info in sorted(infos, key=lambda i: i.path):
            if info.path.endswith(".json"):
                with self.fs.open_input_stream(info.path) as handle:
                    found.append(json.loads(handle.read()))
        return found

    def committed_files(self) -> list[str]:
        """Paths of the shards that completion markers name (what select may read)."""
        return sorted(f"{self.root}/{name}" for m in self.markers() for name in m["files"])

    def recover(self) -> set[str]:
        """Drop what a killed run left half-done; return the URIs of finished sources."""
        self.fs.delete_dir_contents(f"{self.root}/{STAGING}", missing_dir_ok=True)
        markers = self.markers()
        committed = {name for m in markers for name in m["files"]}
        for info in self.fs.get_file_info(pafs.FileSelector(self.root)):
            if info.base_name.startswith("part-") and info.base_name not in committed:
                self.fs.delete_file(info.path)
        return {uri for m in markers for uri in m["sources"]}

    def commit(self, wave: str, uris: list[str], staging: str) -> list[str]:
        """Move the wave's staged files in, then mark its sources done (the marker is last)."""
        staged = sorted(
            i.path
            for i in self.fs.get_file_info(pafs.FileSelector(staging, recursive=True))
            if i.type == pafs.FileType.File and i.path.endswith(".parquet")
        )
        names = [f"part-{wave}-{n:04d}.parquet" for n in range(len(staged))]
        for path, name in zip(staged, names, strict=True):
            self.fs.move(path, f"{self.root}/{name}")
        marker = json.dumps({"wave": wave, "files": names, "sources": uris}).encode()
        temporary = f"{self.root}/{DONE}/.{wave}.json.tmp"
        with self.fs.open_output_stream(temporary) as handle:
            handle.write(marker)
        self.fs.move(temporary, f"{self.root}/{DONE}/{wave}.json")
        self.fs.delete_dir(staging)
        return names


def write_output(out: str, name: str, data: bytes | dict[str, Any]) -> None:
    """A small file under the output root (JSON for a dict), local or on an object store."""
    fs, root = filesystem(out)
    path = f"{root.rstrip('/')}/{name}"
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    payload = data if isinstance(data, bytes) else json.dumps(data, indent=2, default=str).encode()
    with fs.open_output_stream(path) as handle:
        handle.write(payload)


def read_output(out: str, name: str) -> dict[str, Any] | None:
    """A JSON file under the output root, or None when it is not there."""
    fs, root = filesystem(out)
    path = f"{root.rstrip('/')}/{name}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as handle:
        return json.loads(handle.read())


def check_spec(out: str, spec: DecodeSpec) -> None:
    """Scored data made with other clip settings cannot be extended: say which field differs."""
    stored = read_output(out, f"{SCORED}/{SPEC}")
    if stored is None:
        return
    for key, value in dataclasses.asdict(spec).items():
        if key in CLIP_SHAPE and stored.get(key) != value:
            raise ValueError(
                f"config field 'decode.{key}' is {value!r} but the scored data in {out} was "
                f"made with {stored.get(key)!r}: use another --out or the same setting"
            )


Listed = tuple[int, str]  # (place in the listing, uri)


def _waves(
    uris: Iterable[str], size: int, done: set[str], report: ScoreReport
) -> Iterator[list[Listed]]:
    """Batches of unfinished, not-yet-seen sources (a manifest may name a file twice), each
    with its place in the full listing (stable across reruns)."""
    seen: set[str] = set()
    wave: list[Listed] = []
    for index, uri in enumerate(uris):
        if uri in done:
            report.sources_skipped += 1
            continue
        if uri in seen:
            continue
        seen.add(uri)
        wave.append((index, uri))
        if len(wave) == size:
            yield wave
            wave = []
    if wave:
        yield wave


def run_wave(
    store: ScoredStore, listed: list[Listed], spec: DecodeSpec, shard_rows: int
) -> dict[str, int]:
    """Score one wave of sources on Ray Data and commit it. Returns status and clip counts."""
    import ray.data

    uris = [uri for _, uri in listed]
    wave = wave_id(uris)
    # Per run: a task of a killed run still writing cannot land in this run's staging.
    staging = f"{store.root}/{STAGING}/{store.run}/{wave}"
    items = ray.data.from_items(
        [{"uri": uri, "index": index} for index, uri in listed], override_num_blocks=len(listed)
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
    rows.write_parquet(store.uri(staging), min_rows_per_file=shard_rows, row_group_size=1024)
    counts = _staged_counts(store, staging)
    finished = counts.pop("_sources")
    missing = [(index, uri) for index, uri in listed if uri not in finished]
    if missing:  # the task died without a word: the source is errored, not lost
        rows = [
            {"kind": "source", "source_uri": uri, "source_index": index, "status": "errored",
             "reason": "worker_died", "error": CRASHED, "clips": 0}
            for index, uri in missing
        ]  # fmt: skip
        store.fs.create_dir(staging, recursive=True)
        with store.fs.open_output_stream(f"{staging}/crashed.parquet") as handle:
            pq.write_table(pa.Table.from_pylist(rows, schema=SCORED_SCHEMA), handle)
        counts["errored"] = counts.get("errored", 0) + len(missing)
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
    """Score every source of `source` not already finished under `out`."""
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
    for listed in _waves(iter_sources(source), wave_sources, done, report):
        counts = run_wave(store, listed, spec, shard_rows)
        report.waves += 1
        report.sources += len(listed)
        report.clips += counts.get("clips", 0)
        for status in ("scored", "rejected", "errored"):
            report.status_counts[status] = report.status_counts.get(status, 0) + counts.get(
                status, 0
            )
        elapsed = time.monotonic() - started
        progress(
            f"[score] wave {report.waves}: {len(listed)} sources -> {counts.get('clips', 0)} clips "
            f"({report.sources} sources, {report.clips} clips this run, "
            f"{report.clips / max(elapsed, 1e-9):.2f} clips/s)"
        )
    report.seconds = time.monotonic() - started
    if report.sources_skipped:
        progress(f"[score] {report.sources_skipped} sources were finished by an earlier run")
    return report
