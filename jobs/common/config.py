"""One config loader for every job: frozen dataclasses, YAML presets, `key=value` overrides.

A config is checked completely before any work starts; every error names the field,
what it must be and what it got, e.g. `config field 'batch_size' must be in [1, 1024], got -4`.
Every float must be finite, and every number has a declared range (`bounded`,
`section_ranges`), so no override can switch a limit off (`decode.time_budget_s=inf`) or ask
for an absurd size (`decode.width=200000`). Names that become paths or MLflow filters pass
`plain_name`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
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
        shown = repr(got) if len(repr(got)) <= 100 else f"{repr(got)[:100]}..."
        raise ConfigError(f"config field '{field}' must {must}, got {shown}")


def bounded(default: T, low: float, high: float) -> T:
    """A dataclass field whose value must lie in [low, high]: `steps: int = bounded(200, 1, 10**7)`.

    `build` checks it before the dataclass's own `__post_init__` runs, so cross-field checks
    there see values in range."""
    return dataclasses.field(default=default, metadata={"range": (low, high)})


def section_ranges(ranges: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Field metadata declaring the ranges of a nested section whose dataclass is defined
    elsewhere (DecodeSpec lives in pipelines/, which cannot import this module); `build` checks
    them as it checks `bounded` fields:
    `decode: DecodeSpec = field(default_factory=DecodeSpec, metadata=section_ranges(...))`."""
    return {"ranges": ranges}


PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]+")
MAX_NAME_LENGTH = 128


def plain_name(field: str, value: str) -> str:
    """`value` if it is a plain name, else a ConfigError naming `field`.

    For every name that becomes a path segment or goes into an MLflow filter string: letters,
    digits, `.`, `_` and `-` only (no `/`, quotes, spaces or control characters), not `.` or
    `..`, at most MAX_NAME_LENGTH characters."""
    require(
        bool(PLAIN_NAME.fullmatch(value))
        and value not in (".", "..")
        and len(value) <= MAX_NAME_LENGTH,
        field,
        f"be a plain name (letters, digits, '.', '_', '-'; not '.' or '..'; at most "
        f"{MAX_NAME_LENGTH} characters)",
        value,
    )
    return value


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


def build(
    cls: type[T],
    values: dict[str, Any],
    prefix: str = "",
    ranges: dict[str, tuple[float, float]] | None = None,
) -> T:
    """Turn a (nested) mapping into the dataclass `cls`, checking names, types and ranges
    (declared with `bounded`, or for a section with `section_ranges`)."""
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
    kwargs = {}
    for name in (name for name in fields if name in values):
        metadata = fields[name].metadata
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = build(
                hints[name], values[name], f"{prefix}{name}.", metadata.get("ranges")
            )
        else:
            kwargs[name] = _coerce(hints[name], values[name], prefix + name)
            bounds = metadata.get("range") or (ranges or {}).get(name)
            _check_bounds(kwargs[name], prefix + name, bounds)
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
    if hint is float and not isinstance(value, bool):
        return _float(value, field)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"config field '{field}' must be {hint.__name__}, got {value!r}")
    return value


def _float(value: Any, field: str) -> float:
    """An int, a float or a numeric string (YAML 1.1 reads `3e-4` as one) as a float; an int
    beyond float's range becomes inf, which `_check_bounds` then refuses."""
    if isinstance(value, int | float | str):
        try:
            return float(value)
        except OverflowError:
            return math.inf
        except ValueError:
            pass
    raise ConfigError(f"config field '{field}' must be float, got {value!r}")


def _check_bounds(value: Any, field: str, bounds: tuple[float, float] | None) -> None:
    """The field's declared range (the error names it); without one, still no inf or nan
    anywhere: either would switch off any limit it is compared with."""
    if bounds is not None:
        _require_in_range(value, field, *bounds)
    elif isinstance(value, float):
        require(math.isfinite(value), field, "be a finite number", value)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_bounds(item, f"{field}[{i}]", None)


def _require_in_range(value: float, field: str, low: float, high: float) -> None:
    """`config field 'decode.width' must be in [2, 3840], got 200000`."""
    require(low <= value <= high, field, f"be in [{_number(low)}, {_number(high)}]", value)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
