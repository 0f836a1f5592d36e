"""What the training stages evaluate on (jobs/training/stages.py), without Ray."""

from __future__ import annotations

import torch

from jobs.common.config import load_config
from jobs.training.config import TrainConfig
from jobs.training.stages import HELDOUT_SAMPLES, STAGES, heldout_note
from tests.clips import write_token_shards


def test_fewer_heldout_windows_than_asked_are_reported(tmp_path):
    """Two held-out clips of exactly one window give 2 held-out windows, not HELDOUT_SAMPLES:
    the stage evaluates on those 2 and the log says so; with enough windows it says nothing."""
    window = 4
    for frames, expected in ((window, 2), (window + 1, HELDOUT_SAMPLES)):
        data = write_token_shards(tmp_path / f"tokens{frames}", count=40, frames=frames)
        config = load_config(
            TrainConfig, None, ["stage=dynamics", "name=x", f"data={data}", f"window={window}"]
        )
        heldout = STAGES["dynamics"].heldout_batch(config, torch.device("cpu"))
        assert heldout["tokens"].shape[0] == expected
        note = heldout_note("dynamics", heldout, window)
        if expected < HELDOUT_SAMPLES:
            assert note == (
                f"[dynamics] held-out metrics on 2 window(s) of {window} frames, not "
                f"{HELDOUT_SAMPLES}: the held-out clips hold no more distinct windows"
            )
        else:
            assert note is None
