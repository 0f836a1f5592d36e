"""Latent actions against what the footage shows: the game's true actions from the action log
beside each source video, and which way each latent action moves the world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from models import metrics
from pipelines.images import to_model
from pipelines.training_data import heldout_windows


def true_actions(window: dict, frames: int, fps: float = 10.0) -> np.ndarray | None:
    """The game's action for each transition t -> t+1 of the window, from the action log beside
    its source video (`<stem>.actions.parquet`, as `genie synth` writes); None if there is none.

    Curated frames are 1/fps apart; the action of a transition is the one held longest between
    the two frames' times.
    """
    source = window.get("source_uri")
    if not source or "start_s" not in window:
        return None
    log = Path(source).with_name(Path(source).stem + ".actions.parquet")
    if not log.exists():
        return None
    table = pq.read_table(log, columns=["time_s", "action"])
    times, actions = table.column("time_s").to_numpy(), table.column("action").to_numpy()
    start = window["start_s"] + window["start"] / fps
    labels = []
    for t in range(frames - 1):
        held = actions[(times >= start + t / fps) & (times < start + (t + 1) / fps)]
        if len(held) == 0:
            return None
        labels.append(np.bincount(held).argmax())
    return np.array(labels)


def lam_alignment(lam, clips: str, samples: int, frames: int) -> dict[str, float]:
    """How the LAM's codes on held-out windows line up with the game's true actions."""
    windows = heldout_windows(clips, frames, samples)
    codes = lam.infer_actions(to_model(np.stack([w["frames"] for w in windows]))).numpy()
    results = {"lam_codes_used": float(len(np.unique(codes))), "lam_windows": float(len(windows))}
    labels = [true_actions(w, frames) for w in windows]
    if any(label is None for label in labels):
        print("no action logs beside the sources: LAM vs true actions skipped", flush=True)
        return results
    alignment = metrics.action_alignment(codes, np.stack(labels))
    return results | {"lam_nmi": alignment.nmi, "lam_accuracy": alignment.accuracy,
                      "lam_chance_accuracy": alignment.chance_accuracy}  # fmt: skip


def scroll_by_action(true_tokens, inferred, generated_tokens, held) -> dict[str, dict[int, float]]:
    """Mean token-column shift a frame (`metrics.horizontal_shift`) by action: of true frames
    (B, T, gh, gw) grouped by the action the LAM infers for each transition (B, T-1), and of
    rollouts (B', T', gh, gw) that hold action `held` (B',) throughout."""

    def shifts(tokens):
        return metrics.horizontal_shift(tokens[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(0, 1))

    true_shift = shifts(true_tokens).view(inferred.shape).float()
    generated_shift = shifts(generated_tokens).view(len(held), -1).float()
    return {
        "true": {int(a): float(true_shift[inferred == a].mean()) for a in inferred.unique()},
        "generated": {int(a): float(generated_shift[held == a].mean()) for a in held.unique()},
    }
