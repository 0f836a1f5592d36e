"""Ray Data inputs of the training stages: curated clips -> frame windows, token shards -> token windows.

Decoding runs in Ray Data tasks (CPU nodes), apart from the training workers (GPU nodes).
Which windows a clip gives is a pure function of (seed, pass, clip_id), so a rerun sees the
same data. A few clips are held out of training for the held-out metrics each stage logs:
whole source videos where the data records them (`source_id`), so no held-out clip shares a
recording with a training clip, chosen by a hash.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping

import numpy as np
import pyarrow.dataset as pads
import ray.data

from pipelines.executor_idle import pause_when_idle
from pipelines.video import read_frames

HELDOUT_BUCKETS = 20  # about 1 clip in 20 is held out, in whole sources where they allow it
SMALL_DATASET = 10_000  # kept clips; up to this many, `heldout_ids` picks the held-out sources


def clip_hash(clip_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(clip_id.encode(), digest_size=8).digest(), "little")


def window_rng(seed: int, epoch: int, clip_id: str) -> np.random.Generator:
    return np.random.default_rng(clip_hash(f"{seed}:{epoch}:{clip_id}"))


def split_columns(path: str) -> list[str]:
    """The columns the held-out split reads: `clip_id`, and `source_id` where the data has it."""
    names = pads.dataset(path, format="parquet").schema.names
    return ["clip_id", *(["source_id"] if "source_id" in names else [])]


def split_key(row: Mapping) -> str:
    """What the held-out split groups by: the clip's source video where the row records it,
    else the clip itself."""
    return str(row.get("source_id") or row["clip_id"])


def kept_split_rows(path: str) -> list[dict]:
    """`split_columns` of the clips curation kept (all of them where there is no `keep` column)."""
    dataset = pads.dataset(path, format="parquet")
    kept = pads.field("keep") if "keep" in dataset.schema.names else None
    return dataset.to_table(columns=split_columns(path), filter=kept).to_pylist()


def heldout_ids(path: str) -> set[str] | None:
    """Held-out clip ids of a small dataset (up to SMALL_DATASET kept clips); None for a large
    one (see `heldout_predicate`)."""
    rows = kept_split_rows(path)
    return _heldout_sources(rows) if len(rows) <= SMALL_DATASET else None


def _heldout_sources(rows: list[dict]) -> set[str]:
    """Whole sources (`split_key`), lowest hash first, until 1 clip in HELDOUT_BUCKETS (at least
    one) is held out, passing over a source that would take the held-out share past 1 in 5.
    Where every source would (one long video; or a dataset under 10 clips, whose sources hold
    more than one clip each), single clips are held out, and a held-out clip may share its
    recording with training clips."""
    target, most = max(1, len(rows) // HELDOUT_BUCKETS), max(1, len(rows) // 5)
    sources: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        sources[split_key(row)].append(str(row["clip_id"]))
    held: list[str] = []
    for key in sorted(sources, key=clip_hash):
        if len(held) >= target:
            break
        if len(held) + len(sources[key]) <= most:
            held += sources[key]
    if not held:
        held = sorted((str(row["clip_id"]) for row in rows), key=clip_hash)[:target]
    return set(held)


def heldout_predicate(path: str) -> Callable[[Mapping], bool]:
    """Whether a kept row (`split_columns`) is held out (`heldout_split`)."""
    return heldout_split(path)[1]


def heldout_split(path: str) -> tuple[list[dict], Callable[[Mapping], bool]]:
    """The kept rows (`kept_split_rows`, read once) and whether a row is held out: `heldout_ids`
    on a small dataset; on a large one the rows whose `split_key` hashes into bucket 0 of
    HELDOUT_BUCKETS, or, where that holds out no clip or more than 1 in 5 (a few long videos),
    the rows whose clip id does."""
    rows = kept_split_rows(path)
    return rows, _heldout_rule(rows)


def _heldout_rule(rows: list[dict]) -> Callable[[Mapping], bool]:
    if len(rows) <= SMALL_DATASET:
        small = _heldout_sources(rows)
        return lambda row: str(row["clip_id"]) in small

    def by_source(row: Mapping) -> bool:
        return clip_hash(split_key(row)) % HELDOUT_BUCKETS == 0

    if 0 < sum(map(by_source, rows)) <= len(rows) // 5:
        return by_source
    return lambda row: clip_hash(str(row["clip_id"])) % HELDOUT_BUCKETS == 0


def _passes(
    rows: list[dict], is_heldout: Callable[[Mapping], bool], per_clip: int, samples_needed: int
) -> int:
    """Passes over the training clips (kept `rows`, not held out) that give `samples_needed`
    windows, plus one: workers split the stream unevenly and each drops its last partial batch."""
    clips = max(1, sum(not is_heldout(row) for row in rows))
    return math.ceil(samples_needed / (clips * per_clip)) + 1


def split_note(stage: str, path: str) -> str | None:
    """A log line when kept clips of the data record no `source_id` (clips curated, or token
    shards written, by an older `genie curate` or `genie tokenize`): the split holds those out
    one by one, so a held-out clip can share its recording with training clips. None when
    every kept clip records its source."""
    rows = kept_split_rows(path)
    missing = sum(not row.get("source_id") for row in rows)
    if not missing:
        return None
    return (
        f"[{stage}] {missing} of {len(rows)} kept clips in {path} record no source_id, so the "
        "held-out split takes them one by one and a held-out clip may share a recording with "
        "training clips; curate the videos again (then tokenize) to hold out whole recordings"
    )


class ClipWindows:
    """map_batches step: decode each clip's mp4 bytes once and cut `per_clip` random windows
    for each of `passes` passes over the data."""

    def __init__(self, window: int, per_clip: int, seed: int, passes: int):
        self.window, self.per_clip, self.seed, self.passes = window, per_clip, seed, passes

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames = []
        for clip_id, video in zip(batch["clip_id"], batch["video"], strict=True):
            clip = read_frames(bytes(video))
            if len(clip) < self.window:
                continue  # curation guarantees full clips; a short one is skipped, not padded
            for start in window_starts(len(clip), self, str(clip_id)):
                frames.append(clip[start : start + self.window])
        return {
            "frames": np.stack(frames)
            if frames
            else np.zeros((0, self.window, 90, 160, 3), np.uint8)
        }


class TokenWindows:
    """map_batches step: cut `per_clip` random windows of tokens and their latent actions for
    each of `passes` passes over the data."""

    def __init__(self, window: int, per_clip: int, seed: int, passes: int):
        self.window, self.per_clip, self.seed, self.passes = window, per_clip, seed, passes

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tokens, actions = [], []
        for clip_id, flat, shape, clip_actions in zip(
            batch["clip_id"], batch["tokens"], batch["shape"], batch["actions"], strict=True
        ):
            clip = np.asarray(flat, np.int16).reshape(tuple(shape))
            clip_actions = np.asarray(clip_actions, np.int64)
            for start in window_starts(len(clip), self, str(clip_id)):
                tokens.append(clip[start : start + self.window])
                actions.append(clip_actions[start : start + self.window - 1])
        return {"tokens": np.stack(tokens), "actions": np.stack(actions)}


def window_starts(length: int, step: ClipWindows | TokenWindows, clip_id: str) -> list[int]:
    """First frames of a clip's windows, `per_clip` for each pass; a pure function of
    (seed, pass, clip id), so a rerun cuts the same windows."""
    return [
        int(start)
        for epoch in range(step.passes)
        for start in window_rng(step.seed, epoch, clip_id).integers(
            0, length - step.window + 1, size=step.per_clip
        )
    ]


def _windows(path, columns, make_step, window, per_clip, seed, samples_needed) -> ray.data.Dataset:
    """One streaming read of the training clips; each clip is decoded once and gives its
    windows for every pass. (A read per pass, unioned, spent a minute starting Ray tasks on
    six test clips before the first batch.) The trainer's shuffle buffer mixes the clips."""
    rows, is_heldout = heldout_split(path)
    passes = _passes(rows, is_heldout, per_clip, samples_needed)
    split = [c for c in split_columns(path) if c not in columns]
    training = read_kept(path, [*columns, *split]).filter(lambda row: not is_heldout(row))
    return pause_when_idle(
        training.map_batches(make_step(window, per_clip, seed, passes), batch_size=4)
    )


def clip_windows(
    path: str, window: int, per_clip: int, seed: int, samples_needed: int
) -> ray.data.Dataset:
    """Training frame windows (window, 90, 160, 3) uint8 from kept curated clips, enough passes
    over the clips to give `samples_needed` windows."""
    return _windows(path, ["clip_id", "video"], ClipWindows, window, per_clip, seed, samples_needed)


def token_windows(
    path: str, window: int, per_clip: int, seed: int, samples_needed: int
) -> ray.data.Dataset:
    """Training token windows (window, h, w) int16 with their (window-1) latent actions."""
    columns = ["clip_id", "tokens", "shape", "actions"]
    return _windows(path, columns, TokenWindows, window, per_clip, seed, samples_needed)


def read_kept(path: str, columns: list[str]) -> ray.data.Dataset:
    """Ray Data read of the clips curation kept (every row where there is no `keep` column):
    the one reader of curated clips and token shards inside Ray Data."""
    if "keep" not in pads.dataset(path, format="parquet").schema.names:
        return ray.data.read_parquet(path, columns=columns)
    rows = ray.data.read_parquet(path, columns=[*columns, "keep"])
    return rows.filter(lambda row: bool(row["keep"])).drop_columns(["keep"])


def kept_clips(
    path: str, columns: list[str], batch_size: int = 8, ids: Collection[str] | None = None
) -> Iterator[dict]:
    """Rows of the clips curation kept (every row where there is no `keep` column), streamed
    a few at a time: the one reader of curated clips and token shards outside Ray Data. With
    `ids`, only those clips' rows are read."""
    dataset = pads.dataset(path, format="parquet")
    kept = pads.field("keep") if "keep" in dataset.schema.names else None
    if ids is not None:
        wanted = pads.field("clip_id").isin(sorted(ids))
        kept = wanted if kept is None else kept & wanted
    columns = [c for c in columns if c in dataset.schema.names]
    for batch in dataset.to_batches(columns=columns, filter=kept, batch_size=batch_size):
        yield from batch.to_pylist()


def spread_starts(length: int, window: int, count: int) -> list[int]:
    """Up to `count` distinct window starts spread evenly over a clip of `length` frames."""
    if length < window:
        return []
    return list(dict.fromkeys(np.linspace(0, length - window, count).round().astype(int).tolist()))


def heldout_windows(path: str, window: int, count: int, every_clip: bool = False) -> list[dict]:
    """Up to `count` distinct windows of held-out clips, spread evenly over the held-out clips
    (a metric of the first clip alone says little; with more clips than `count`, `count` clips
    spread over the dataset, one window each), never repeated. With `every_clip`, of every kept
    clip: for a corpus no stage trained on.

    Each is its row (`clip_id` and, where the data has them, `source_uri`, `start_s`,
    `source_id`) with `start` (first frame) and `frames` (window, H, W, 3) uint8 for curated
    clips, or `tokens` (window, h, w) int16 and `actions` (window-1,) int64 for token shards.
    """
    rows, is_heldout = heldout_split(path)
    scored = [str(row["clip_id"]) for row in rows if every_clip or is_heldout(row)]
    per_clip = math.ceil(count / max(1, len(scored)))
    spread = np.linspace(0, len(scored) - 1, min(count, len(scored))).round().astype(int)
    first = {scored[i] for i in spread.tolist()}
    names = pads.dataset(path, format="parquet").schema.names
    tokens = "tokens" in names
    columns = ["clip_id", "tokens", "shape", "actions"] if tokens else ["clip_id", "video"]
    windows: list[dict] = []
    # The spread clips first; the others only where a spread clip is shorter than `window`.
    for ids in (first, set(scored) - first):
        if not ids:
            continue
        for row in kept_clips(path, [*columns, "source_uri", "start_s", "source_id"], ids=ids):
            if tokens:
                clip = np.asarray(row.pop("tokens"), np.int16).reshape(row.pop("shape"))
                clip_actions = np.asarray(row.pop("actions"), np.int64)
            else:
                clip = read_frames(row.pop("video"))
            for start in spread_starts(len(clip), window, per_clip):
                cut = {"start": start}
                if tokens:
                    cut |= {"tokens": clip[start : start + window],
                            "actions": clip_actions[start : start + window - 1]}  # fmt: skip
                else:
                    cut["frames"] = clip[start : start + window]
                windows.append(row | cut)
                if len(windows) == count:
                    return windows
    if not windows:
        which = "clips" if every_clip else "held-out clips"
        raise ValueError(f"no {which} of {window} frames or more in {path}")
    return windows
