"""models/checkpoint.py: every checkpoint carries its model config, checked on load; a tokenizer
and a dynamics model that do not fit together are refused; the meta-device build initialises
like the constructor."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models.checkpoint import (
    CheckpointMismatch,
    build_model,
    check_pair,
    config_dict,
    init_weights,
    load_trained,
    read_info,
    save_trained,
)


def test_a_checkpoint_trained_with_another_config_is_refused_naming_the_field(tmp_path):
    model = build_model("lam", "tiny")
    path = save_trained(model, "lam", "tiny", 5, tmp_path / "lam.pt")
    assert read_info(path)["config"] == config_dict("lam", "tiny")
    assert isinstance(load_trained(path), type(model))
    # A LAM trained when `tiny` moved patches by 4 pixels, not 8: its weights have the same
    # shapes, and it used to load silently with the wrong displacement.
    saved = torch.load(path, weights_only=True)
    saved["config"]["displacements"] = [4]
    torch.save(saved, tmp_path / "old.pt")
    with pytest.raises(CheckpointMismatch, match=r"config field 'lam.displacements'.* is \[4\]"):
        load_trained(tmp_path / "old.pt")
    del saved["config"]
    torch.save(saved, tmp_path / "older.pt")
    with pytest.raises(CheckpointMismatch, match="records no model config"):
        load_trained(tmp_path / "older.pt")


def test_a_tokenizer_and_dynamics_of_other_vocabularies_or_grids_are_refused():
    tokenizer = {"config": config_dict("tokenizer", "tiny")}
    dynamics = {"config": config_dict("dynamics", "tiny")}
    check_pair(tokenizer, dynamics, ("tok-a", "dyn-b"))
    for field in ("num_codes", "grid_width"):
        other = {"config": {**dynamics["config"], field: 2 * dynamics["config"][field]}}
        with pytest.raises(CheckpointMismatch, match=rf"tok-a and dynamics dyn-b.*{field}"):
            check_pair(tokenizer, other, ("tok-a", "dyn-b"))


def test_meta_build_then_init_weights_matches_the_constructor():
    for stage in ("tokenizer", "lam", "dynamics"):
        torch.manual_seed(0)
        reference = build_model(stage, "tiny")
        model = build_model(stage, "tiny", device="meta")
        assert all(p.is_meta for p in model.parameters())
        model.to_empty(device="cpu")
        init_weights(model, stage, "tiny")
        expected = dict(reference.named_parameters()) | dict(reference.named_buffers())
        for name, value in [*model.named_parameters(), *model.named_buffers()]:
            want = expected[name]
            assert value.shape == want.shape, name
            if "blocks." in name:  # reset in place: the constructor's distribution
                if value.dtype.is_floating_point and value.numel() > 64:
                    assert float(value.std()) == pytest.approx(float(want.std()), rel=0.25), name
            elif name.endswith(("cos", "sin")) or not value.dtype.is_floating_point:
                assert torch.equal(value, want), name  # deterministic: exactly the same
            elif want.numel() > 1 and float(want.std()) == 0:
                assert torch.equal(value, want), name  # constant inits (zeros, 0.5, ...)
    assert dataclasses.is_dataclass(build_model("dynamics", "paper", device="meta").config)
