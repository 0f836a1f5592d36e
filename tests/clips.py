"""Small datasets for tests: curated clips (real mp4 bytes in real Parquet, in the curated schema's
shape (clip_id, video, keep), of a sprite moving over a scene), the same played with an action
log beside each source video, and token shards in the schema `genie tokenize` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.video import encode_mp4


def moving_sprite_clip(seed: int, frames: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clip = np.zeros((frames, 90, 160, 3), np.uint8)
    clip[:] = rng.integers(40, 200, 3)
    clip[:, 70:] = (40, 150, 40)
    x, y = int(rng.integers(0, 100)), 50
    for t in range(frames):
        x = min(max(x + int(rng.choice([-4, 0, 4])), 0), 148)
        clip[t, y : y + 12, x : x + 10] = (255, 0, 255)
    return clip


def source_of(clip: int, sources: int | None) -> str | None:
    """The `source_id` of clip `clip` where `sources` videos were cut into the clips in turn."""
    return None if sources is None else f"source{clip % sources}"


def write_clips(folder: Path, count: int, frames: int = 32, sources: int | None = None) -> Path:
    rows = [
        {
            "clip_id": f"clip{i:03d}",
            "video": encode_mp4(moving_sprite_clip(i, frames), 10),
            "keep": True,
            **({} if sources is None else {"source_id": source_of(i, sources)}),
        }
        for i in range(count)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-00000.parquet")
    return folder


def write_token_shards(
    folder: Path,
    count: int,
    frames: int,
    grid: tuple[int, int] = (2, 3),
    sources: list[int] | None = None,
) -> Path:
    """`count` clips of `frames` token frames each; every token of clip i, frame t is
    i * 100 + t, so a window's clip and first frame can be read back from its tokens. With
    `sources`, clip i comes from source video `sources[i]` (else no source is recorded)."""
    from pipelines.tokenize import TOKEN_SCHEMA

    rows = [
        {
            "clip_id": f"clip{i:03d}",
            "source_id": None if sources is None else f"source{sources[i]}",
            "tokens": np.repeat(i * 100 + np.arange(frames, dtype=np.int16), grid[0] * grid[1]),
            "shape": [frames, *grid],
            "actions": np.zeros(frames - 1, np.int8),
            "tokenizer_run_id": "tok",
            "lam_run_id": "lam",
        }
        for i in range(count)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=TOKEN_SCHEMA), folder / "part-00000.parquet")
    return folder


PLAYED_MOVES = {0: 0, 1: -6, 2: 6}  # stay, left, right: pixels the played sprite moves
PLAYED_NAMES = {0: "stay", 1: "left", 2: "right"}


def played_sprite_clip(seed: int, frames: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A sprite over a plain scene moved by a random action each frame: (frames, actions)."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 3, frames)
    clip = np.zeros((frames, 90, 160, 3), np.uint8)
    clip[:] = (60, 90, 160)
    x = 70
    for t in range(frames):
        clip[t, 40:52, x : x + 10] = (255, 220, 0)
        x = min(max(x + PLAYED_MOVES[int(actions[t])], 0), 150)
    return clip, actions


def write_played_clips(folder: Path, clips: int, shuffle_actions: bool = False) -> str:
    """Curated clips of `played_sprite_clip`, each from its own source video with an action log
    beside it (the videos themselves are never read); with `shuffle_actions` the logs hold
    actions the frames do not show. Clips at 10 FPS, logs one entry a frame."""
    rng = np.random.default_rng(99)
    rows = []
    for i in range(clips):
        frames, actions = played_sprite_clip(i)
        if shuffle_actions:
            actions = rng.integers(0, 3, len(actions))
        names = [PLAYED_NAMES[int(a)] for a in actions]
        log = {"time_s": np.arange(len(actions)) / 10, "action": actions, "action_name": names}
        pq.write_table(pa.table(log), folder / f"game{i}.actions.parquet")
        rows.append(
            {
                "clip_id": f"clip{i:03d}",
                "video": encode_mp4(frames, 10),
                "keep": True,
                "source_uri": str(folder / f"game{i}.mp4"),
                "start_s": 0.0,
            }
        )
    (folder / "clips").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), folder / "clips" / "part-00000.parquet")
    return str(folder / "clips")
