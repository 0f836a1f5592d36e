"""How much of the game's true actions the footage shows: the LAM's encoder trained WITH the
true actions (cross-entropy on each window's last transition), then scored on the held-out
transitions `genie eval` scores the LAM on, with the same NMI.

The LAM learns its codes from the frames alone, so its NMI can only approach what an encoder of
its shape reaches when it is told the actions. A low LAM NMI under a high probe NMI says the
LAM does not find what the frames show; a low probe NMI says the frames hardly show the actions
(a game with momentum, a random player who is often blocked), whatever the LAM does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from jobs.evaluation.actions import read_action_log
from models.configs import LatentActionConfig
from models.lam import LatentActionModel
from pipelines.images import to_model
from pipelines.training_data import heldout_predicate, kept_clips


class ActionProbe(torch.nn.Module):
    """The LAM's encoder with its output read as logits over the true actions; it sees
    `window` frames, the last two being the transition it labels."""

    def __init__(self, config: LatentActionConfig, num_actions: int, window: int) -> None:
        super().__init__()
        # The LAM, decoder and all, with `code_dim` set to the number of actions; only its
        # encoder (`encode`) is trained and used.
        self.lam = LatentActionModel(dataclasses.replace(config, code_dim=num_actions))
        self.window = window

    def logits(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, window, C, H, W) -> (B, num_actions) for the transition into the last frame."""
        return self.lam.encode(frames)[:, -1]

    @torch.no_grad()
    def infer_actions(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, C, H, W) -> the likeliest true action of each transition (B, T-1),
        each read from the `window` frames ending at its second frame (fewer at the start)."""
        actions = []
        for t in range(frames.shape[1] - 1):
            start = max(0, t + 2 - self.window)
            actions.append(self.logits(frames[:, start : t + 2]).argmax(dim=-1))
        return torch.stack(actions, dim=1)


@dataclasses.dataclass
class LabelledClips:
    """Training clips (not held out) with a true action for every transition."""

    clips: list[tuple[np.ndarray, np.ndarray]]  # (frames (T, H, W, 3) uint8, labels (T-1,))
    without_actions: int  # training clips left out: no action log, or it does not cover them
    too_short: int  # training clips left out: fewer frames than the probe's window
    num_actions: int  # 1 + the largest action id seen

    @classmethod
    def read(
        cls, clips: str, logs: Mapping[str, str], limit: int, window: int, fps: float = 10.0
    ) -> LabelledClips:
        """Up to `limit` training clips of `clips` (every one when there are fewer), spread
        over the dataset; only those are decoded. Clips without true actions, or shorter than
        `window` frames, are counted, not used."""
        from pipelines.video import read_frames

        is_heldout = heldout_predicate(clips)
        where = ["clip_id", "source_uri", "start_s", "source_id"]
        rows = [row for row in kept_clips(clips, where) if not is_heldout(row)]
        picked = np.linspace(0, len(rows) - 1, min(limit, len(rows))).round().astype(int)
        wanted = {str(rows[i]["clip_id"]) for i in picked.tolist()}
        labelled, without, short = [], 0, 0
        for row in kept_clips(clips, [*where, "video"], ids=wanted):
            source, start = row.get("source_uri"), row.get("start_s")
            log = read_action_log(str(source), fps, logs) if source and start is not None else None
            if log is None:
                without += 1
                continue
            frames = read_frames(row["video"])
            if len(frames) < max(window, 2):
                short += 1
                continue
            labels = log.labels(start, len(frames) - 1, fps)
            if labels is None:
                without += 1
                continue
            labelled.append((frames, labels))
        num_actions = 1 + max((int(labels.max()) for _, labels in labelled), default=-1)
        return cls(labelled, without, short, num_actions)


def train_probe(
    config: LatentActionConfig,
    data: LabelledClips,
    window: int,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> ActionProbe:
    """An `ActionProbe` trained for `steps` steps on random windows of `data`'s clips, each
    batch of a random length from 2 to `window` frames (inference reads the first transitions of
    a window from fewer than `window` frames)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    probe = ActionProbe(config, data.num_actions, window)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=0.01)
    start, every = time.perf_counter(), max(1, steps // 10)
    for step in range(1, steps + 1):
        frames, labels = [], []
        length = int(rng.integers(2, window + 1))
        for _ in range(batch_size):
            clip, clip_labels = data.clips[rng.integers(len(data.clips))]
            first = int(rng.integers(len(clip) - length + 1))
            frames.append(clip[first : first + length])
            labels.append(clip_labels[first + length - 2])
        loss = F.cross_entropy(probe.logits(to_model(np.stack(frames))), torch.tensor(labels))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(probe.parameters(), 1.0)
        optimizer.step()
        if step % every == 0 or step == steps:
            elapsed = time.perf_counter() - start
            progress(f"  step {step}/{steps}  loss {loss.item():.3f}  {elapsed:.0f} s")
    probe.eval()
    return probe
