"""The one config loader: presets, overrides, and errors that name the field."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Literal

import pytest

from jobs.common.config import (
    ConfigError,
    bounded,
    flatten,
    load_config,
    plain_name,
    require,
    section_ranges,
    to_dict,
)


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


# ---------------------------------------------------------------- finite values and ranges


@dataclass(frozen=True)
class Section:  # defined elsewhere, as DecodeSpec is in pipelines/
    width: int = 160
    budget_s: float = 60.0


@dataclass(frozen=True)
class BoundedConfig:
    steps: int = bounded(200, 1, 1000)
    lr: float = bounded(3e-4, 1e-9, 1.0)
    scale: float = 1.0  # no declared range: still finite
    sizes: tuple[float, ...] = (1.0,)
    section: Section = field(
        default_factory=Section,
        metadata=section_ranges({"width": (2, 3840), "budget_s": (1, 3600)}),
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("steps=1001", "config field 'steps' must be in [1, 1000], got 1001"),
        ("steps=0", "config field 'steps' must be in [1, 1000], got 0"),
        (f"steps={10**400}", "config field 'steps' must be in [1, 1000], got 1000000"),
        ("lr=1e999", "config field 'lr' must be in [1e-09, 1], got inf"),
        ("lr=.nan", "config field 'lr' must be in [1e-09, 1], got nan"),
        ("scale=inf", "config field 'scale' must be a finite number, got inf"),
        ("scale=-.inf", "config field 'scale' must be a finite number, got -inf"),
        (f"scale={10**400}", "config field 'scale' must be a finite number, got inf"),
        ("sizes=[1, .nan]", "config field 'sizes[1]' must be a finite number, got nan"),
        ("section.width=200000", "config field 'section.width' must be in [2, 3840], got 200000"),
        ("section.budget_s=inf", "config field 'section.budget_s' must be in [1, 3600], got inf"),
    ],
)
def test_numbers_must_be_finite_and_in_their_declared_range(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(BoundedConfig, None, [override])
    assert message in str(error.value)


def test_values_in_range_pass():
    config = load_config(BoundedConfig, None, ["steps=1000", "lr=1", "section.budget_s=1"])
    assert (config.steps, config.lr, config.section.budget_s) == (1000, 1.0, 1.0)


@pytest.mark.parametrize("name", ["tokenizer-tiny", "run_2.v3", "A", "x" * 128, "..."])
def test_plain_names_pass(name):
    assert plain_name("name", name) == name


REFUSED_NAMES = ["", ".", "..", "../../x", "/abs", "a/b", "bob's-run", 'a"b', "a b", "a\nb",
                 "café", "x" * 129, "a\\b", "`x`"]  # fmt: skip


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_other_names_are_refused_naming_the_field(name):
    with pytest.raises(ConfigError, match=r"config field 'name' must be a plain name"):
        plain_name("name", name)


# ---------------------------------------------------------------- the jobs' own configs


def numeric_fields(cls, prefix="", ranges=None):
    """(field name, declared range or None) of every int/float field, sections included."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint):
            yield from numeric_fields(hint, f"{prefix}{item.name}.", item.metadata.get("ranges"))
        elif hint in (int, float):
            yield prefix + item.name, item.metadata.get("range") or (ranges or {}).get(item.name)


def test_every_number_of_the_job_configs_has_a_declared_range():
    from jobs.curation.config import THRESHOLD_RANGES, CurateConfig
    from jobs.training.config import TrainConfig

    for cls in (TrainConfig, CurateConfig):
        for name, bounds in numeric_fields(cls):
            if name.startswith("thresholds."):  # checked against THRESHOLD_RANGES
                assert name.split(".")[1] in THRESHOLD_RANGES, name
                continue
            assert bounds is not None, f"{cls.__name__}.{name} has no declared range"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=1e999", "config field 'optim.lr' must be in [1e-09, 1], got inf"),
        ("num_workers=100000", "config field 'num_workers' must be in [1, 4096], got 100000"),
        ("window=100000", "config field 'window' must be in [2, 1024], got 100000"),
        (
            "optim.grad_clip=inf",
            "config field 'optim.grad_clip' must be in [1e-06, 1e+06], got inf",
        ),
        ("steps=100000000", "config field 'steps' must be in [1, 10000000], got 100000000"),
        ("batch_size=100000", "config field 'batch_size' must be in [1, 1024], got 100000"),
        ("shuffle_buffer=10000000", "config field 'shuffle_buffer' must be in [0, 4096]"),
        ("seed=-1", "config field 'seed' must be in [0, 2147483647], got -1"),
        ("name=bob's-run", "config field 'name' must be a plain name"),
    ],
)
def test_train_config_refuses_unbounded_overrides(override, message):
    from jobs.training.config import TrainConfig

    with pytest.raises(ConfigError) as error:
        load_config(TrainConfig, None, ["name=x", "data=/data", override])
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("decode.width=200000", "config field 'decode.width' must be in [2, 3840], got 200000"),
        ("decode.clip_frames=10000000", "config field 'decode.clip_frames' must be in [2, 1024]"),
        ("decode.time_budget_s=inf", "'decode.time_budget_s' must be in [0.001, 86400], got inf"),
        (
            "decode.max_duration_s=.nan",
            "'decode.max_duration_s' must be in [0.001, 86400], got nan",
        ),
        ("decode.max_pixels=1000000000", "'decode.max_pixels' must be in [1, 33177600]"),
        ("wave_sources=10000000", "config field 'wave_sources' must be in [1, 65536]"),
        ("thresholds.blur=inf", "config field 'thresholds.blur' must be a finite number, got inf"),
        ("run_name=bob's-run", "config field 'run_name' must be a plain name"),
    ],
)
def test_curate_config_refuses_unbounded_overrides(override, message):
    from jobs.curation.config import CurateConfig

    with pytest.raises(ConfigError) as error:
        load_config(CurateConfig, None, [override])
    assert message in str(error.value)


def test_a_decoded_clip_must_fit_in_memory():
    from jobs.curation.config import CurateConfig

    big = ["decode.width=3840", "decode.height=2160"]
    assert load_config(CurateConfig, None, [*big, "decode.clip_frames=40"]).decode.width == 3840
    with pytest.raises(ConfigError, match=r"'decode.clip_frames' must keep a decoded clip within"):
        load_config(CurateConfig, None, [*big, "decode.clip_frames=1024"])


def test_every_preset_is_within_the_ranges():
    from jobs.curation.config import PRESETS_DIR as CURATE_PRESETS
    from jobs.curation.config import CurateConfig
    from jobs.training.config import PRESETS_DIR as TRAIN_PRESETS
    from jobs.training.config import TrainConfig

    for path in TRAIN_PRESETS.glob("*.yaml"):
        load_config(TrainConfig, path, ["name=x", "data=/data"])
    for path in CURATE_PRESETS.glob("*.yaml"):
        load_config(CurateConfig, path)
    assert list(TRAIN_PRESETS.glob("*.yaml")) and list(CURATE_PRESETS.glob("*.yaml"))


def test_eval_refuses_a_run_name_that_is_not_plain(tmp_path, capsys):
    from jobs.evaluate import main as evaluate

    with pytest.raises(SystemExit) as exit_code:
        evaluate(["--clips", str(tmp_path), "--name", "bob's-run"], prog="genie eval")
    assert exit_code.value.code == 2
    assert "config field '--name' must be a plain name" in capsys.readouterr().err
