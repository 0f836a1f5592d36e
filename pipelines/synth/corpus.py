"""The built-in raw corpus: gameplay videos with their action logs, plus the bad sources a
curation pipeline must reject or report.

Each source is planned up front (name, kind, length, seed, what curation should do with it),
written to a temporary name and renamed when complete, and marked done under `_done/`, so a
killed run resumes where it stopped. `manifest.parquet` lists every source with a `uri`
column (what curation reads) and an `expected` column (`keep`, `reject:<filter>` or
`error`), so tests can check curation's verdict on each file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.synth.game import ACTIONS, GameState, make_level, player_actions
from pipelines.synth.render import Renderer
from pipelines.video import write_video

FPS = 30
GAMEPLAY_CONTAINERS = (".mp4", ".webm", ".mp4", ".mkv", ".mp4")  # mostly mp4, some of each


@dataclass(frozen=True)
class SourceSpec:
    name: str  # file name inside the corpus folder
    kind: str  # gameplay, vfr, static, black, scene_cuts, ... (see plan_corpus)
    seconds: float
    seed: int
    expected: str  # keep | reject:<filter> | error
    width: int = 320
    height: int = 180

    @property
    def frames(self) -> int:
        return round(self.seconds * FPS)


def plan_corpus(
    videos: int, seed: int, duration_range: tuple[float, float], bad: bool
) -> list[SourceSpec]:
    """What the corpus holds: `videos` gameplay sources, then one source of each bad kind."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(videos):
        seconds = round(float(rng.uniform(*duration_range)), 1)
        suffix = GAMEPLAY_CONTAINERS[i % len(GAMEPLAY_CONTAINERS)]
        specs.append(SourceSpec(f"gameplay_{i:04d}{suffix}", "gameplay", seconds, seed + i, "keep"))
    if not bad:
        return specs
    base = seed + 100_000
    specs += [
        SourceSpec("vfr.mkv", "vfr", 40.0, base + 1, "keep"),
        SourceSpec("static.mp4", "static", 30.0, base + 2, "reject:motion"),
        SourceSpec("black.mp4", "black", 30.0, base + 3, "reject:blank"),
        SourceSpec("scene_cuts.mp4", "scene_cuts", 30.0, base + 4, "reject:short_shots"),
        SourceSpec("too_short.mp4", "gameplay", 4.0, base + 5, "reject:too_short"),
        SourceSpec("tiny_resolution.mp4", "gameplay", 25.0, base + 6, "reject:resolution", 64, 36),
        SourceSpec("truncated.mp4", "truncated", 6.0, base + 7, "error"),
        SourceSpec("corrupt_bytes.mp4", "corrupt_bytes", 0.0, base + 8, "error"),
        SourceSpec("not_a_video.mp4", "not_a_video", 0.0, base + 9, "error"),
        SourceSpec("zero_byte.mp4", "zero_byte", 0.0, base + 10, "error"),
        SourceSpec("audio_only.mp4", "audio_only", 5.0, base + 11, "error"),
    ]
    if videos:  # the first gameplay video again, re-encoded: a near-duplicate
        first = specs[0]
        specs.append(
            SourceSpec("duplicate.mkv", "gameplay", first.seconds, first.seed, "reject:duplicate")
        )
    return specs


def gameplay(spec: SourceSpec) -> tuple[Iterator[np.ndarray], np.ndarray]:
    """Frames of a played level and the action held after each frame.

    Row i of the action log is the key held from frame i to frame i+1: it causes frame i+1.
    """
    actions = player_actions(spec.seed, spec.frames)
    state = GameState(make_level(spec.seed))
    renderer = Renderer(state.level, spec.width, spec.height)

    def frames() -> Iterator[np.ndarray]:
        for action in actions:
            yield renderer.draw(state)
            state.step(int(action))

    return frames(), actions


def scene_cut_frames(spec: SourceSpec, shot_frames: int = 15) -> Iterator[np.ndarray]:
    """Gameplay that jumps between six unrelated levels every half second."""
    shots = [
        gameplay(SourceSpec("", "gameplay", spec.seconds, spec.seed + k, "")) for k in range(6)
    ]
    for t in range(spec.frames):
        yield next(shots[(t // shot_frames) % len(shots)][0])


def write_actions(path: Path, actions: np.ndarray, times: np.ndarray) -> None:
    table = pa.table(
        {
            "frame": pa.array(np.arange(len(actions)), pa.int32()),
            "time_s": pa.array(times, pa.float64()),
            "action": pa.array(actions, pa.int8()),
            "action_name": pa.array([ACTIONS[a] for a in actions], pa.string()),
        }
    )
    pq.write_table(table, path)


def write_audio_only(path: Path, seconds: float) -> None:
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100, layout="mono")
        tone = np.sin(np.arange(int(seconds * 44100)) * 2 * np.pi * 440 / 44100)
        for start in range(0, len(tone), 1024):
            chunk = tone[start : start + 1024].astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = 44100
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def write_source(spec: SourceSpec, target: Path) -> dict:
    """Write one source to `target`; returns facts for the manifest (frames, actions file)."""
    facts: dict = {"frames": 0, "actions_file": None}
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "gameplay":
        frames, actions = gameplay(spec)
        facts["frames"] = write_video(target, frames, FPS)
        facts["actions"] = (actions, np.arange(spec.frames) / FPS)
    elif spec.kind == "vfr":
        # A 30 FPS game captured at an irregular rate: frames dropped at random, real times kept.
        frames, actions = gameplay(spec)
        keep = rng.random(spec.frames) < 0.6
        keep[0] = True
        kept_times = np.flatnonzero(keep) / FPS
        kept = (f for f, k in zip(frames, keep, strict=True) if k)
        facts["frames"] = write_video(target, kept, FPS, timestamps=kept_times)
        # The log keeps the game's 30 FPS timeline; `time_s` places each action in the video.
        facts["actions"] = (actions, np.arange(spec.frames) / FPS)
    elif spec.kind == "static":
        frame = next(gameplay(spec)[0])
        facts["frames"] = write_video(target, (frame for _ in range(spec.frames)), FPS)
    elif spec.kind == "black":
        black = np.zeros((spec.height, spec.width, 3), np.uint8)
        facts["frames"] = write_video(target, (black for _ in range(spec.frames)), FPS)
    elif spec.kind == "scene_cuts":
        facts["frames"] = write_video(target, scene_cut_frames(spec), FPS)
    elif spec.kind == "truncated":
        frames, _ = gameplay(spec)
        write_video(target, frames, FPS)
        data = target.read_bytes()
        target.write_bytes(data[: len(data) * 2 // 5])  # the index at the end is gone
    elif spec.kind == "corrupt_bytes":
        header = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
        target.write_bytes(header + rng.integers(0, 256, 200_000, np.uint8).tobytes())
    elif spec.kind == "not_a_video":
        target.write_text("This is a text file with a video extension.\n" * 50)
    elif spec.kind == "zero_byte":
        target.write_bytes(b"")
    elif spec.kind == "audio_only":
        write_audio_only(target, spec.seconds)
    else:
        raise ValueError(f"unknown source kind {spec.kind!r}")
    return facts


def render_one(spec: SourceSpec, out: Path) -> dict:
    """Write a source atomically and mark it done; returns its manifest row."""
    start = time.perf_counter()
    final = out / spec.name
    partial = out / f".partial-{spec.name}"
    facts = write_source(spec, partial)
    actions_uri = None
    if "actions" in facts:
        actions_path = out / f"{Path(spec.name).stem}.actions.parquet"
        write_actions(actions_path, *facts.pop("actions"))
        actions_uri = str(actions_path)
    os.replace(partial, final)
    row = {
        "uri": str(final),
        **asdict(spec),
        "fps": FPS,
        "frames": facts["frames"],
        "actions_uri": actions_uri,
        "render_s": round(time.perf_counter() - start, 3),
    }
    (out / "_done" / f"{spec.name}.json").write_text(json.dumps(row))
    return row


MANIFEST_SCHEMA = pa.schema(
    [
        ("uri", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("seconds", pa.float64()),
        ("seed", pa.int64()),
        ("expected", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.int32()),
        ("frames", pa.int64()),
        ("actions_uri", pa.string()),
        ("render_s", pa.float64()),
    ]
)


def generate_corpus(
    out: Path,
    videos: int,
    seed: int = 0,
    duration_range: tuple[float, float] = (20.0, 120.0),
    bad: bool = True,
    workers: int | None = None,
    progress: Callable[[str], None] = print,
) -> Path:
    """Render the corpus into `out` (resuming a partial one); returns the manifest path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "_done").mkdir(exist_ok=True)
    specs = plan_corpus(videos, seed, duration_range, bad)
    todo = [s for s in specs if not (out / "_done" / f"{s.name}.json").exists()]
    if len(todo) < len(specs):
        progress(f"resuming: {len(specs) - len(todo)} of {len(specs)} sources already written")
    todo.sort(key=lambda s: -s.frames)  # longest first keeps the workers evenly busy
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(render_one, spec, out) for spec in todo]
        for done, future in enumerate(as_completed(futures), 1):
            row = future.result()
            rate = row["frames"] / row["render_s"] if row["render_s"] else 0.0
            progress(
                f"[{done}/{len(todo)}] {row['name']}: {row['kind']}, {row['seconds']:.1f} s, "
                f"{row['frames']} frames ({rate:,.0f} frames/s), expect {row['expected']}"
            )
    rows = [json.loads((out / "_done" / f"{s.name}.json").read_text()) for s in specs]
    manifest = out / "manifest.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), manifest)
    total_frames = sum(r["frames"] for r in rows)
    progress(
        f"corpus: {len(rows)} sources, {total_frames:,} frames, "
        f"{time.perf_counter() - start:.1f} s with {workers} workers -> {manifest}"
    )
    return manifest


def load_actions(uri: str) -> np.ndarray:
    """The action log of a source as an int array (row i causes frame i+1)."""
    return pq.read_table(uri, columns=["action"]).column("action").to_numpy()
