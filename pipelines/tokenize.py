"""Curated clips -> token shards, on a Ray Data actor pool holding the models.

Each actor loads the trained tokenizer and LAM once (on a GPU when it has one), from where
training wrote them (a local folder, an object-store URI or a model.pt), and turns each
clip into its token grid (T, h, w) int16 and its T-1 latent actions. Clips are encoded in
windows of the length the models were trained on; LAM windows overlap by one frame so every
transition gets exactly one action.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from models.checkpoint import load_trained
from pipelines.images import to_model
from pipelines.storage import local_copy
from pipelines.video import read_frames

TOKEN_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("source_id", pa.string()),  # the clip's source video, for the held-out split; may be null
        ("tokens", pa.list_(pa.int16())),  # flattened (T, h, w)
        ("shape", pa.list_(pa.int32())),  # [T, h, w]
        ("actions", pa.list_(pa.int8())),  # T-1 latent actions; actions[t] is frame t -> t+1
        ("tokenizer_run_id", pa.string()),
        ("lam_run_id", pa.string()),
    ]
)


class ClipTokenizer:
    """Ray Data actor: decode each clip, tokenize it and infer its latent actions."""

    def __init__(self, tokenizer: str, lam: str, run_ids: tuple[str, str], window: int):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_trained(local_copy(tokenizer), self.device)
        self.lam = load_trained(local_copy(lam), self.device)
        self.run_ids = run_ids
        self.window = window

    @torch.no_grad()
    def tokens(self, frames: torch.Tensor) -> np.ndarray:
        chunks = [
            self.tokenizer.encode(frames[:, s : s + self.window])
            for s in range(0, frames.shape[1], self.window)
        ]
        return torch.cat(chunks, dim=1)[0].to(torch.int16).cpu().numpy()

    @torch.no_grad()
    def actions(self, frames: torch.Tensor) -> np.ndarray:
        total, step = frames.shape[1], self.window - 1
        chunks = [
            self.lam.infer_actions(frames[:, s : min(s + self.window, total)])
            for s in range(0, total - 1, step)
            if min(s + self.window, total) - s >= 2
        ]
        return torch.cat(chunks, dim=1)[0].to(torch.int8).cpu().numpy()

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        rows: dict[str, list] = {name: [] for name in TOKEN_SCHEMA.names}
        sources = batch.get("source_id", [None] * len(batch["clip_id"]))
        for clip_id, source_id, video in zip(
            batch["clip_id"], sources, batch["video"], strict=True
        ):
            frames = to_model(read_frames(bytes(video)), self.device)[None]
            tokens = self.tokens(frames)
            actions = self.actions(frames)
            assert len(actions) == len(tokens) - 1, (len(actions), len(tokens))
            rows["clip_id"].append(str(clip_id))
            rows["source_id"].append(None if source_id is None else str(source_id))
            rows["tokens"].append(tokens.reshape(-1))
            rows["shape"].append(np.array(tokens.shape, np.int32))
            rows["actions"].append(actions)
            rows["tokenizer_run_id"].append(self.run_ids[0])
            rows["lam_run_id"].append(self.run_ids[1])
        return pa.Table.from_pydict(rows, schema=TOKEN_SCHEMA)
