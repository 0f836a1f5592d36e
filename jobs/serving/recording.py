"""Play sessions saved as footage, in the raw-video layout `genie curate` and `genie synth` use.

A recording `<name>` is `<name>.mp4` (the frames as shown, 160x90 at 10 FPS) beside
`<name>.actions.parquet` (`time_s` float64: frame i at i/10 s; `action` int8: the latent code
taken from frame i to i + 1; `action_name` when the server has an action map), and the folder's
`manifest.parquet` lists every recording (`uri`, `actions_uri`, relative to the folder, plus
`frames` and `created`), so `genie curate run --source <folder>/manifest.parquet` curates them
like any other footage.

Names are made here (`play-<UTC time>-<random>`), never taken from a request. Files are
written under a temporary name and renamed, and the manifest is rewritten whole and renamed,
so a reader never sees half a recording.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.video import write_video

FPS = 10
MANIFEST = "manifest.parquet"
MANIFEST_SCHEMA = pa.schema(
    [("uri", pa.string()), ("actions_uri", pa.string()), ("frames", pa.int64()),
     ("created", pa.string())]
)  # fmt: skip


class Recorder:
    """Writes recordings into `folder` (created on first use); safe to call from many threads."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.lock = threading.Lock()

    def save(
        self,
        frames: Sequence[np.ndarray],
        actions: Sequence[int],
        action_names: Sequence[str] | None = None,
    ) -> str:
        """Write frames (RGB uint8 (H, W, 3), first to last) and the codes between them
        (len(frames) - 1); returns the recording's name."""
        if len(frames) < 2 or len(actions) != len(frames) - 1:
            raise ValueError(
                f"a recording needs >= 2 frames and one action between each two, got "
                f"{len(frames)} frames and {len(actions)} actions"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        created = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"play-{created}-{secrets.token_hex(4)}"
        video, log = f"{name}.mp4", f"{name}.actions.parquet"
        columns = {
            "time_s": pa.array(np.arange(len(actions)) / FPS, pa.float64()),
            "action": pa.array(np.asarray(actions), pa.int8()),
        }
        if action_names is not None:
            columns["action_name"] = pa.array([action_names[a] for a in actions], pa.string())
        partial = self.folder / f".partial-{name}"
        write_video(partial.with_suffix(".mp4"), frames, FPS)
        pq.write_table(pa.table(columns), partial.with_suffix(".parquet"))
        os.replace(partial.with_suffix(".parquet"), self.folder / log)
        os.replace(partial.with_suffix(".mp4"), self.folder / video)
        row = {"uri": video, "actions_uri": log, "frames": len(frames), "created": created}
        with self.lock:
            self._add_to_manifest(row)
        return name

    def _add_to_manifest(self, row: dict) -> None:
        manifest = self.folder / MANIFEST
        rows = pq.read_table(manifest).to_pylist() if manifest.exists() else []
        partial = self.folder / f".partial-{MANIFEST}"
        pq.write_table(pa.Table.from_pylist([*rows, row], schema=MANIFEST_SCHEMA), partial)
        os.replace(partial, manifest)
