"""Resuming a training run from its checkpoint (jobs/training/checkpoint.py), in one process."""

from __future__ import annotations

import json

import pyarrow.fs as pafs
import pytest
import torch

from jobs.training import checkpoint
from models.checkpoint import CheckpointMismatch, build_model, config_dict


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")  # a one-process save
def test_resuming_from_a_checkpoint_of_another_model_config_is_refused_naming_the_field(tmp_path):
    """The train state a resumed run reads passes only if its model config is the current one;
    a checkpoint whose LAM moved patches by 4 pixels (the preset now says 8), or that records
    no model config, is refused with an error naming the field."""
    model = build_model("lam", "tiny")
    optimizer = torch.optim.AdamW(model.parameters())
    state = {"step": 5, "batches_seen": 5, "model_config": config_dict("lam", "tiny")}
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    checkpoint.save(str(folder), model, optimizer, 0, state)
    fs = pafs.LocalFileSystem()
    assert checkpoint.resume_state(fs, str(folder), "lam", "tiny")["step"] == 5

    saved = json.loads((folder / checkpoint.TRAIN_STATE).read_text())
    saved["model_config"]["displacements"] = [4]
    (folder / checkpoint.TRAIN_STATE).write_text(json.dumps(saved))
    with pytest.raises(
        CheckpointMismatch,
        match=r"config field 'lam.displacements' of the checkpoint at .* is \[4\], but the "
        r"'tiny' preset now has \[8\]",
    ):
        checkpoint.resume_state(fs, str(folder), "lam", "tiny")

    del saved["model_config"]
    (folder / checkpoint.TRAIN_STATE).write_text(json.dumps(saved))
    with pytest.raises(CheckpointMismatch, match="records no model config"):
        checkpoint.resume_state(fs, str(folder), "lam", "tiny")
