"""Learned quality: the paper curated with a classifier trained on a few labelled clips.

The interface is small so better models can plug in: a `QualityModel` maps a matrix of clip
features (columns of the scored table, so no decoding) to P(good). One model ships: logistic
regression over log-scaled cheap features, trained from a CSV of `clip_id,label` (label good/bad
or 1/0) against a scored dataset, and saved as JSON (never pickle: a model file may come from
anywhere). Select scores every clip with it; the threshold is a probability.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pyarrow.dataset as pads

from pipelines.curation.filters.base import Clip, Filter

GOOD_LABELS = {"good", "1", "true", "keep", "yes"}
BAD_LABELS = {"bad", "0", "false", "reject", "no"}


def clip_features(clip: Clip) -> dict[str, float]:
    """Cheap features beyond the filter scores: brightness and colourfulness (Hasler and
    Suesstrunk 2003), on every 4th frame."""
    frames = clip.frames[::4].astype(np.float32)
    rg = frames[..., 0] - frames[..., 1]
    yb = 0.5 * (frames[..., 0] + frames[..., 1]) - frames[..., 2]
    colourfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    return {"luma_mean": float(clip.gray.mean()), "colorfulness": float(colourfulness)}


class QualityModel(Protocol):
    """What select needs from a learned scorer."""

    kind: ClassVar[str]
    features: tuple[str, ...]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(N, len(features)) -> (N,) probability that each clip is good."""
        ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LogisticQualityModel:
    """P(good) = sigmoid(w . standardised(log1p(|x|) * sign(x)) + b)."""

    kind: ClassVar[str] = "logistic"
    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    trained_on: dict[str, Any] = field(default_factory=dict)

    DEFAULT_FEATURES: ClassVar[tuple[str, ...]] = (
        "blank", "motion", "scene_cut", "blur", "luma_mean", "colorfulness",
    )  # fmt: skip

    @staticmethod
    def _transform(features: np.ndarray) -> np.ndarray:
        values = np.nan_to_num(np.asarray(features, np.float64), nan=0.0)
        return np.sign(values) * np.log1p(np.abs(values))

    def predict(self, features: np.ndarray) -> np.ndarray:
        z = (self._transform(features) - np.array(self.mean)) / np.array(self.std)
        return 1.0 / (1.0 + np.exp(-(z @ np.array(self.weights) + self.bias)))

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: np.ndarray,
        names: tuple[str, ...],
        l2: float = 1e-2,
        steps: int = 50,
    ) -> LogisticQualityModel:
        """Newton's method on the L2-regularised log-loss (small data: exact and fast)."""
        x = cls._transform(features)
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
        y = np.asarray(labels, np.float64)
        w = np.zeros(z.shape[1])
        penalty = np.diag([l2] * (z.shape[1] - 1) + [0.0]) * len(z)
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-(z @ w)))
            gradient = z.T @ (p - y) + penalty @ w
            hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty + 1e-9 * np.eye(len(w))
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        accuracy = float((((z @ w) > 0) == (y > 0.5)).mean())
        return cls(
            features=tuple(names),
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            weights=tuple(float(v) for v in w[:-1]),
            bias=float(w[-1]),
            trained_on={"clips": len(y), "good": int(y.sum()), "train_accuracy": accuracy},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "features": list(self.features),
            "mean": list(self.mean),
            "std": list(self.std),
            "weights": list(self.weights),
            "bias": self.bias,
            "trained_on": self.trained_on,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogisticQualityModel:
        return cls(
            features=tuple(data["features"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            weights=tuple(data["weights"]),
            bias=float(data["bias"]),
            trained_on=dict(data.get("trained_on", {})),
        )


MODEL_KINDS: dict[str, type] = {"logistic": LogisticQualityModel}


def load_model(path: str | Path) -> QualityModel:
    """A model saved by `save_model`; the file says which kind it is."""
    data = json.loads(Path(path).read_text())
    kind = data.get("kind")
    if kind not in MODEL_KINDS:
        raise ValueError(
            f"quality model {path}: unknown kind {kind!r} (known: {list(MODEL_KINDS)})"
        )
    return MODEL_KINDS[kind].from_dict(data)


def save_model(model: QualityModel, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.to_dict(), indent=2))
    return path


def read_labels(path: str | Path) -> dict[str, int]:
    """A CSV with columns clip_id,label -> {clip_id: 1 good / 0 bad}; a bad line is named."""
    labels: dict[str, int] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"clip_id", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs a header with clip_id,label; got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            label = (row["label"] or "").strip().lower()
            if label not in GOOD_LABELS | BAD_LABELS:
                raise ValueError(f"{path}:{line}: label must be good or bad, got {row['label']!r}")
            labels[row["clip_id"].strip()] = int(label in GOOD_LABELS)
    if len(set(labels.values())) < 2:
        raise ValueError(f"{path}: needs both good and bad examples")
    return labels


def fit_from_scored(
    scored: str, labels_csv: str | Path, features: tuple[str, ...] | None = None
) -> LogisticQualityModel:
    """Train on the labelled clips' stored features (no decoding)."""
    labels = read_labels(labels_csv)
    names = features or LogisticQualityModel.DEFAULT_FEATURES
    dataset = pads.dataset(scored, format="parquet")
    table = dataset.to_table(
        columns=["clip_id", *names],
        filter=(pads.field("kind") == "clip") & pads.field("clip_id").isin(list(labels)),
    )
    found = table.column("clip_id").to_pylist()
    missing = sorted(set(labels) - set(found))
    if missing:
        raise ValueError(
            f"{len(missing)} labelled clip ids are not in {scored} (e.g. {missing[:3]})"
        )
    x = np.stack([table.column(name).to_numpy(zero_copy_only=False) for name in names], axis=1)
    y = np.array([labels[c] for c in found])
    return LogisticQualityModel.fit(x, y, names)


class QualityFilter(Filter):
    name = "quality"
    level = "dataset"
    default_threshold = 0.5
    meaning = "probability that the clip is good, from the learned quality model"

    def score_columns(self, model: QualityModel, columns: dict[str, np.ndarray]) -> np.ndarray:
        missing = [f for f in model.features if f not in columns]
        if missing:
            raise ValueError(f"quality model needs columns {missing} that the scored data lacks")
        matrix = np.stack([np.asarray(columns[f], np.float64) for f in model.features], axis=1)
        return model.predict(matrix)
