"""jobs/configs/train/default.yaml writes out every TrainConfig field with its default."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from jobs.common.config import load_config
from jobs.training.config import PRESETS_DIR, TrainConfig

DEFAULT_YAML = PRESETS_DIR / "default.yaml"


def dataclass_defaults(cls: type) -> dict[str, Any]:
    """Every init field of `cls` with its default, nested dataclasses as mappings."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if not item.init:
            continue
        if item.default is not dataclasses.MISSING:
            values[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            value = item.default_factory()
            values[item.name] = (
                dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
            )
        else:
            values[item.name] = dataclasses.MISSING
    return values


def test_default_yaml_lists_every_field_with_its_default():
    written = yaml.safe_load(DEFAULT_YAML.read_text())
    expected = dataclass_defaults(TrainConfig)
    assert list(written) == list(expected), "fields missing, extra or out of order"
    for key, value in expected.items():
        if isinstance(value, dict):
            assert list(written[key]) == list(value), f"fields of '{key}'"
            for inner, inner_value in value.items():
                assert_same(written[key][inner], inner_value, f"{key}.{inner}")
        else:
            assert_same(written[key], value, key)


def assert_same(written: Any, default: Any, field: str) -> None:
    # Type too: YAML's `0` equals False and `1` equals 1.0 in Python.
    assert (type(written), written) == (type(default), default), (
        f"'{field}': default.yaml says {written!r}, the dataclass {default!r}"
    )


def test_default_yaml_is_a_preset_that_gives_the_dataclass_defaults():
    required = ["name=run", "data=clips"]  # the two fields every run sets
    loaded = load_config(TrainConfig, "default", required, PRESETS_DIR)
    assert loaded == TrainConfig(name="run", data="clips")
