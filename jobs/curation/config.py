"""Config of a curation run (`genie curate`): one frozen dataclass, checked before any work starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jobs.common.config import (
    ConfigError,
    bounded,
    flatten,
    plain_name,
    require,
    section_ranges,
    to_dict,
)
from pipelines.curation.conditions import Selection, parse_where, thresholds_condition
from pipelines.curation.decode import DecodeSpec
from pipelines.curation.filters import BY_NAME, Thresholds

PRESETS_DIR = Path(__file__).parents[1] / "configs" / "curate"

# Decode settings a config may ask for (DecodeSpec lives in pipelines/, its ranges here).
DECODE_RANGES: dict[str, tuple[float, float]] = {
    "fps": (1, 120),
    "width": (2, 3840),
    "height": (2, 2160),
    "clip_frames": (2, 1024),
    "stride_frames": (1, 100_000),
    "cut_threshold": (0.01, 1.0),  # 1 never splits a source into shots
    "max_duration_s": (0.001, 86_400.0),
    "max_pixels": (1, 7680 * 4320),  # 8K
    "time_budget_s": (0.001, 86_400.0),
    "crf": (0, 51),
}
MAX_CLIP_BYTES = 2**30  # one decoded clip, held whole in memory: clip_frames x height x width x 3

# Valid threshold ranges, by what each score can be.
THRESHOLD_RANGES: dict[str, tuple[float, float]] = {
    "resolution": (0.0, 1e5),
    "blank": (0.0, 255.0),
    "motion": (0.0, 1.0),
    "scene_cut": (0.0, 1.0),
    "blur": (0.0, 1e9),
    "quality": (0.0, 1.0),
    "duplicate": (0.0, 256.0),
}


@dataclass(frozen=True)
class CurateConfig:
    source: str = ""  # directory, glob or manifest (.parquet/.csv with a `uri` column)
    out: str = ""  # output root: scored/, clips/, rejects/, errors/, sources/, summary.json
    decode: DecodeSpec = field(default_factory=DecodeSpec, metadata=section_ranges(DECODE_RANGES))
    thresholds: Thresholds = field(default_factory=Thresholds)
    where: str = ""  # an expression over scores; when set it replaces `thresholds`
    quality_model: str = ""  # JSON written by `genie curate fit-quality`; "" = no quality filter
    wave_sources: int = bounded(512, 1, 65_536)  # sources per wave (a unit of commit and resume)
    shard_rows: int = bounded(8000, 1, 100_000)  # rows per scored shard (~200 MB of 25 KB clips)
    select_threads: int = bounded(4, 1, 256)
    mlflow_uri: str = ""  # default: $MLFLOW_TRACKING_URI
    run_name: str = ""  # MLflow run name; default: <command>-<out folder name>

    def __post_init__(self):
        d = self.decode
        for key in ("width", "height"):
            value = getattr(d, key)
            require(value % 2 == 0, f"decode.{key}", "be even (H.264 4:2:0 needs it)", value)
        clip_bytes = d.clip_frames * d.height * d.width * 3
        require(
            clip_bytes <= MAX_CLIP_BYTES,
            "decode.clip_frames",
            f"keep a decoded clip within {MAX_CLIP_BYTES / 2**30:g} GiB (clip_frames x height x "
            f"width x 3 bytes: {clip_bytes / 2**30:.1f} GiB at {d.width}x{d.height})",
            d.clip_frames,
        )
        for item in fields(Thresholds):
            low, high = THRESHOLD_RANGES[item.name]
            value = getattr(self.thresholds, item.name)
            require(
                math.isfinite(value) and low <= value <= high,
                f"thresholds.{item.name}",
                f"be in [{low:g}, {high:g}] ({BY_NAME[item.name].meaning})",
                value,
            )
        if self.run_name:
            plain_name("run_name", self.run_name)
        if self.where:
            try:
                self.selection()
            except ValueError as error:
                raise ConfigError(f"config field 'where': {error}") from None
        if self.quality_model:
            require(
                Path(self.quality_model).is_file(),
                "quality_model",
                "be a model file written by `genie curate fit-quality`",
                self.quality_model,
            )

    def selection(self) -> Selection:
        """What select keeps: `where` when set, else every threshold in filter order."""
        with_quality = bool(self.quality_model)
        condition = (
            parse_where(self.where)
            if self.where
            else thresholds_condition(self.thresholds, with_quality)
        )
        return Selection.of(condition, with_quality)

    def require_paths(self, command: str) -> None:
        """score and run read a source; every command writes or reads `out`."""
        require(bool(self.out), "out", "be set (--out or out=...)", self.out)
        if command in ("score", "run"):
            require(bool(self.source), "source", f"be set for `{command}` (--source)", self.source)

    def flat_params(self) -> dict[str, Any]:
        return flatten(to_dict(self))


def threshold_overrides(path: str) -> list[str]:
    """A YAML mapping of filter -> threshold as `thresholds.<name>=<value>` overrides."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--thresholds: {path} does not exist")
    values = yaml.safe_load(file.read_text()) or {}
    if isinstance(values, dict) and set(values) == {"thresholds"}:
        values = values["thresholds"]
    if not isinstance(values, dict):
        raise ConfigError(f"--thresholds: {path} must be a mapping of filter: threshold")
    return [f"thresholds.{name}={value}" for name, value in values.items()]
