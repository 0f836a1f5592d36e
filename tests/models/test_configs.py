"""Presets: paper sizes counted on the meta device, field validation."""

import dataclasses
from typing import get_args

import pytest
import torch

from jobs.training.config import PresetName
from models.configs import DEPARTURES, PRESETS, DynamicsConfig, TokenizerConfig, get_preset
from models.dynamics import DynamicsModel
from models.lam import LatentActionModel
from models.tokenizer import VideoTokenizer


def count_on_meta(model_cls, config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in model_cls(config).parameters())


@pytest.mark.parametrize(
    ("model_cls", "part", "target"),
    [
        (VideoTokenizer, "tokenizer", 200e6),
        (LatentActionModel, "lam", 300e6),
        (DynamicsModel, "dynamics", 10.1e9),
    ],
)
def test_paper_preset_sizes_within_ten_percent(model_cls, part, target):
    count = count_on_meta(model_cls, getattr(get_preset("paper"), part))
    assert abs(count - target) / target < 0.10, f"{part}: {count / 1e6:.1f}M vs {target / 1e6:.0f}M"


def test_coinrun_preset_follows_the_paper_appendix():
    preset = get_preset("coinrun")
    assert (
        preset.tokenizer.encoder_layers,
        preset.tokenizer.decoder_layers,
        preset.tokenizer.dim,
    ) == (8, 8, 512)
    assert (preset.tokenizer.num_codes, preset.tokenizer.patch_size) == (1024, 4)
    assert preset.lam.num_actions == 6
    assert (preset.dynamics.num_layers, preset.dynamics.dim) == (12, 512)


def test_grid_for_160x90_is_40x23_with_patch_4_and_20x12_with_patch_8():
    coinrun, tiny = get_preset("coinrun"), get_preset("tiny")
    assert (coinrun.tokenizer.grid_height, coinrun.tokenizer.grid_width) == (23, 40)
    assert (tiny.tokenizer.grid_height, tiny.tokenizer.grid_width) == (12, 20)
    assert (tiny.dynamics.grid_height, tiny.dynamics.grid_width) == (12, 20)
    assert (tiny.lam.grid_height, tiny.lam.grid_width) == (6, 10)


def test_bad_fields_are_named():
    with pytest.raises(
        ValueError, match=r"config field 'tokenizer.patch_size' must be an integer > 0, got 0"
    ):
        TokenizerConfig(patch_size=0)
    with pytest.raises(ValueError, match=r"'dynamics.mask_rate_min'"):
        DynamicsConfig(mask_rate_min=0.0)
    with pytest.raises(ValueError, match=r"'tokenizer.dim'"):
        TokenizerConfig(dim=30, num_heads=4)


def test_preset_parts_must_fit_together():
    tiny = get_preset("tiny")
    with pytest.raises(ValueError, match=r"'dynamics.num_codes' must equal tokenizer.num_codes"):
        dataclasses.replace(tiny, dynamics=dataclasses.replace(tiny.dynamics, num_codes=17))


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="coinrun"):
        get_preset("huge")


@pytest.mark.parametrize("base", ["tiny", "small"])
def test_paper_form_presets_differ_from_theirs_only_in_the_departures(base):
    """What a comparison with the paper's form relies on: the same sizes, every switch off."""
    ours, paper = get_preset(base), get_preset(f"{base}-paper-form")
    assert paper.tokenizer == ours.tokenizer
    for part, switches in DEPARTURES.items():
        assert all(getattr(getattr(ours, part), s) for s in switches), (part, "ours")
        assert not any(getattr(getattr(paper, part), s) for s in switches), (part, "paper")
        back = dataclasses.replace(getattr(paper, part), **{s: True for s in switches})
        assert back == getattr(ours, part)


def test_genie_train_takes_every_preset():
    assert set(get_args(PresetName)) == set(PRESETS)
