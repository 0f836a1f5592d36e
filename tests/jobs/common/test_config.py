"""The one config loader: presets, overrides, and errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from jobs.common.config import ConfigError, flatten, load_config, require, to_dict


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-4
    warmup_steps: int = 100

    def __post_init__(self):
        require(self.lr > 0, "optim.lr", "be > 0", self.lr)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 8
    precision: Literal["fp32", "bf16"] = "fp32"
    window: tuple[int, ...] = (16,)
    run_name: str | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self):
        require(self.batch_size > 0, "batch_size", "be > 0", self.batch_size)


def test_preset_then_overrides_win(tmp_path):
    (tmp_path / "small.yaml").write_text("batch_size: 4\noptim:\n  lr: 0.001\n")
    config = load_config(TrainConfig, "small", ["optim.lr=2e-3", "window=[8, 16]"], tmp_path)
    assert config.batch_size == 4
    assert config.optim.lr == pytest.approx(2e-3)
    assert config.optim.warmup_steps == 100  # untouched defaults stay
    assert config.window == (8, 16)
    assert flatten(to_dict(config))["optim.lr"] == pytest.approx(2e-3)


def test_a_yaml_path_works_as_a_preset(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("precision: bf16\n")
    assert load_config(TrainConfig, path).precision == "bf16"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["batch_size=-4"], "config field 'batch_size' must be > 0, got -4"),
        (["optim.lr=0"], "config field 'optim.lr' must be > 0, got 0.0"),
        (["batch_size=abc"], "config field 'batch_size' must be int, got 'abc'"),
        (["batch_size=true"], "config field 'batch_size' must be int, got True"),
        (["precision=fp8"], "config field 'precision' must be one of ['fp32', 'bf16'], got 'fp8'"),
        (["optim.lrr=1"], "unknown config field 'optim.lrr' (did you mean 'optim.lr'?)"),
        (["window=5"], "config field 'window' must be a list, got 5"),
        (["batch_size"], "override 'batch_size' must look like key=value"),
    ],
)
def test_bad_values_fail_naming_the_field(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(TrainConfig, None, overrides)
    assert message in str(error.value)


def test_unknown_preset_lists_the_known_ones(tmp_path):
    (tmp_path / "tiny.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match="known presets: tiny"):
        load_config(TrainConfig, "huge", [], tmp_path)
