"""What the training stages evaluate on (jobs/training/stages.py), without Ray."""

from __future__ import annotations

import itertools

import pytest
import torch

from jobs.common.config import ConfigError, load_config
from jobs.training.config import TrainConfig
from jobs.training.stages import HELDOUT_SAMPLES, STAGES, heldout_note
from tests.clips import write_clips, write_token_shards


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


def test_augmentations_change_each_training_window_whole(tmp_path):
    """flip=true mirrors each training window left-right with probability 1/2; permute_colors
    puts its RGB channels in one of their 6 orders. Each applies to all of a window's frames
    together, for the tokenizer and the LAM; the same seed draws the same augmentations (what a
    resumed run relies on); held-out windows are never augmented. Off (the paper's form) leaves
    the batch as it came. Dynamics trains on tokens: either option there is refused before any
    work, naming the field."""
    frames = torch.randint(0, 256, (64, 3, 9, 16, 3), dtype=torch.uint8)
    cpu = torch.device("cpu")

    def augmented(stage: str, *overrides: str) -> torch.Tensor:
        torch.manual_seed(0)
        config = load_config(TrainConfig, None, [f"stage={stage}", "name=x", "data=d", *overrides])
        return STAGES[stage].inputs({"frames": frames}, cpu, config)["frames"]

    plain = augmented("tokenizer")
    assert torch.equal(plain, frames.permute(0, 1, 4, 2, 3).float() / 255)
    orders = list(itertools.permutations(range(3)))
    for stage in ("tokenizer", "lam"):
        mirrored = augmented(stage, "flip=true")
        kept = (mirrored == plain).flatten(1).all(1)
        flipped = (mirrored == plain.flip(-1)).flatten(1).all(1)
        assert bool((kept ^ flipped).all())  # every window wholly one or the other
        assert 16 <= int(flipped.sum()) <= 48

        recoloured = augmented(stage, "permute_colors=true")
        drawn = [
            [o for o in orders if torch.equal(recoloured[i], plain[i][:, list(o)])]
            for i in range(64)
        ]
        assert all(len(d) == 1 for d in drawn)  # each window one channel order, all frames alike
        assert {d[0] for d in drawn} == set(orders)

        both = augmented(stage, "flip=true", "permute_colors=true")
        assert torch.equal(both, augmented(stage, "flip=true", "permute_colors=true"))
        assert not torch.equal(both, plain)

    clips = write_clips(tmp_path / "clips", count=20, frames=5)
    heldout = {}
    for flags in ([], ["flip=true", "permute_colors=true"]):
        config = load_config(
            TrainConfig, None, ["stage=tokenizer", "name=x", f"data={clips}", "window=4", *flags]
        )
        heldout[bool(flags)] = STAGES["tokenizer"].heldout_batch(config, cpu)["frames"]
    assert torch.equal(heldout[False], heldout[True])

    for name in ("flip", "permute_colors"):
        with pytest.raises(ConfigError, match=f"config field '{name}' must be false for stage dyn"):
            load_config(TrainConfig, None, ["stage=dynamics", "name=x", "data=d", f"{name}=true"])
