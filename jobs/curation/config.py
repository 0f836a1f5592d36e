"""Config of a curation run (`genie curate`): one frozen dataclass, checked before any work starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jobs.common.config import ConfigError, flatten, require, to_dict
from pipelines.curation.conditions import Selection, parse_where, thresholds_condition
from pipelines.curation.decode import DecodeSpec
from pipelines.curation.filters import BY_NAME, Thresholds

PRESETS_DIR = Path(__file__).parents[1] / "configs" / "curate"

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
    decode: DecodeSpec = field(default_factory=DecodeSpec)
    thresholds: Thresholds = field(default_factory=Thresholds)
    where: str = ""  # an expression over scores; when set it replaces `thresholds`
    quality_model: str = ""  # JSON written by `genie curate fit-quality`; "" = no quality filter
    wave_sources: int = 512  # sources per wave (a unit of commit and resume)
    shard_rows: int = 8000  # rows per scored shard (~200 MB of 25 KB clips)
    select_threads: int = 4
    mlflow_uri: str = ""  # default: $MLFLOW_TRACKING_URI
    run_name: str = ""  # MLflow run name; default: <command>-<out folder name>

    def __post_init__(self):
        d = self.decode
        for key in ("fps", "width", "height", "clip_frames", "stride_frames", "max_pixels"):
            require(getattr(d, key) > 0, f"decode.{key}", "be > 0", getattr(d, key))
        for key in ("width", "height"):
            value = getattr(d, key)
            require(value % 2 == 0, f"decode.{key}", "be even (H.264 4:2:0 needs it)", value)
        require(d.clip_frames >= 2, "decode.clip_frames", "be >= 2", d.clip_frames)
        require(d.max_duration_s > 0, "decode.max_duration_s", "be > 0", d.max_duration_s)
        require(d.time_budget_s > 0, "decode.time_budget_s", "be > 0", d.time_budget_s)
        require(0 <= d.crf <= 51, "decode.crf", "be in [0, 51]", d.crf)
        for item in fields(Thresholds):
            low, high = THRESHOLD_RANGES[item.name]
            value = getattr(self.thresholds, item.name)
            require(
                math.isfinite(value) and low <= value <= high,
                f"thresholds.{item.name}",
                f"be in [{low:g}, {high:g}] ({BY_NAME[item.name].meaning})",
                value,
            )
        require(self.wave_sources > 0, "wave_sources", "be > 0", self.wave_sources)
        require(self.shard_rows > 0, "shard_rows", "be > 0", self.shard_rows)
        require(self.select_threads > 0, "select_threads", "be > 0", self.select_threads)
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
