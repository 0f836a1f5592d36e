"""One config loader for every job: frozen dataclasses, YAML presets, `key=value` overrides.

A config is checked completely before any work starts; every error names the field,
what it must be and what it got, e.g. `config field 'train.batch_size' must be > 0, got -4`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that cannot run. The message names the field."""


def require(condition: bool, field: str, must: str, got: Any) -> None:
    """For `__post_init__` checks: `require(self.lr > 0, "lr", "be > 0", self.lr)`."""
    if not condition:
        raise ConfigError(f"config field '{field}' must {must}, got {got!r}")


def load_config(
    cls: type[T],
    preset: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    presets_dir: Path | None = None,
) -> T:
    """Build `cls` from a preset (a name in `presets_dir` or a YAML path) plus `key=value` overrides."""
    values: dict[str, Any] = {}
    if preset is not None:
        values = _read_preset(preset, presets_dir)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. train.lr=3e-4)")
        _set_dotted(values, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return build(cls, values)


def build(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """Turn a (nested) mapping into the dataclass `cls`, checking names and types."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"config field '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {values!r}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = (
                f" (did you mean '{prefix}{close[0]}'?)"
                if close
                else f"; known: {', '.join(fields)}"
            )
            raise ConfigError(f"unknown config field '{prefix}{key}'{hint}")
    kwargs = {
        name: _coerce(hints[name], values[name], prefix + name) for name in fields if name in values
    }
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field with no default was not given
        raise ConfigError(f"config {cls.__name__}: {e}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """The resolved config as plain data (for YAML files and MLflow params)."""
    return dataclasses.asdict(config)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1}} -> {'train.lr': 1}: the shape MLflow params want."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _read_preset(preset: str | Path, presets_dir: Path | None) -> dict[str, Any]:
    path = Path(preset)
    if path.suffix not in (".yaml", ".yml") and presets_dir is not None:
        path = presets_dir / f"{preset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in presets_dir.glob("*.yaml")) if presets_dir else []
        raise ConfigError(
            f"preset {str(preset)!r} not found (known presets: {', '.join(known) or 'none'})"
        )
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"preset {path} must be a YAML mapping")
    return loaded


def _set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{key}': '{part}' is not a section")
    node[leaf] = value


def _coerce(hint: Any, value: Any, field: str) -> Any:
    """Check `value` against the annotation `hint`; widen int to float; lists to tuples."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, prefix=field + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, field)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"config field '{field}' must be one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config field '{field}' must be a list, got {value!r}")
        item_hint = args[0] if args else Any
        items = [_coerce(item_hint, v, f"{field}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config field '{field}' must be a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads `3e-4` as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"config field '{field}' must be {hint.__name__}, got {value!r}")
    return value
