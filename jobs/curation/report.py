"""Pictures of a curation for people: score histograms with their thresholds, the funnel, and a
contact sheet of kept and rejected clips (a row per reason) so a threshold can be judged by eye.
"""

from __future__ import annotations

import io
import math
from typing import Any

import cv2
import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes
import matplotlib.pyplot as plt
import numpy as np

from pipelines.curation.conditions import Compare, Selection
from pipelines.video import read_frames

FRAMES_PER_SAMPLE = 4


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    plt.close(figure)
    return buffer.getvalue()


def histograms(scores: dict[str, np.ndarray], selection: Selection) -> bytes:
    """One histogram per score that has values, with the selection's thresholds drawn on it."""
    names = [n for n, v in scores.items() if len(v) and np.isfinite(v).any()]
    columns = 3
    rows = max(1, math.ceil(len(names) / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False, layout="constrained"
    )
    lines = [t for t in (*selection.terms, *selection.duplicate) if isinstance(t, Compare)]
    for ax, name in zip(axes.flat, names, strict=False):
        values = scores[name][np.isfinite(scores[name])]
        ax.hist(values, bins=40, color="#4477aa")
        for term in (t for t in lines if t.field == name):
            ax.axvline(
                term.value, color="#cc3311", linestyle="--", label=f"{term.op} {term.value:g}"
            )
            ax.legend(fontsize=7)
        ax.set_title(f"{name} (n={len(values)})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    figure.suptitle("clip scores", fontsize=11)
    return _png(figure)


def funnel(summary: dict[str, Any]) -> bytes:
    """Clips through each filter in order; source verdicts beside."""
    clips, sources = summary["clips"], summary["sources"]
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(11, 3.6), width_ratios=(2, 1), layout="constrained"
    )
    steps = clips["funnel"]
    labels = ["scored"] + [s["filter"] for s in steps]
    values = [clips["scored"] - clips["errored"]] + [s["out"] for s in steps]
    left.barh(labels[::-1], values[::-1], color="#228833")
    for y, value in enumerate(values[::-1]):
        left.text(value, y, f" {value}", va="center", fontsize=8)
    left.set_title("clips remaining after each filter", fontsize=10)
    verdicts = ["accepted", "rejected", "errored", "skipped"]
    counts = [sources[v] for v in verdicts]
    right.bar(verdicts, counts, color=["#228833", "#ccbb44", "#ee6677", "#bbbbbb"])
    for x, count in enumerate(counts):
        right.text(x, count, str(count), ha="center", va="bottom", fontsize=8)
    right.set_title(f"listed entries ({sources['inputs']} in)", fontsize=10)
    return _png(figure)


def contact_sheet(samples: dict[str, list[tuple[str, bytes]]]) -> bytes:
    """A row per label (kept first, then each reject reason): a few clips, 4 frames each.

    Composed with NumPy and written by OpenCV: a grid of a hundred small images is ~50x faster
    this way than as matplotlib axes."""
    labels = sorted(samples, key=lambda label: (label != "kept", label))
    tile_h, tile_w, gap, caption = 90, 160, 4, 16
    per_row = max((len(samples[label]) for label in labels), default=1) * FRAMES_PER_SAMPLE
    row_h = caption + tile_h + gap
    sheet = np.full((max(1, len(labels)) * row_h, per_row * (tile_w + gap), 3), 255, np.uint8)
    for row, label in enumerate(labels):
        top = row * row_h
        cv2.putText(sheet, label, (2, top + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        for column, (_, video) in enumerate(samples[label]):
            frames = read_frames(video)
            picks = np.linspace(0, len(frames) - 1, FRAMES_PER_SAMPLE).astype(int)
            for j, index in enumerate(picks):
                x = (column * FRAMES_PER_SAMPLE + j) * (tile_w + gap)
                tile = cv2.resize(frames[index], (tile_w, tile_h), interpolation=cv2.INTER_AREA)
                sheet[top + caption : top + caption + tile_h, x : x + tile_w] = tile
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the contact sheet")
    return png.tobytes()


def render_report(
    summary: dict[str, Any],
    scores: dict[str, np.ndarray],
    samples: dict[str, list[tuple[str, bytes]]],
    selection: Selection,
) -> dict[str, bytes]:
    """PNG bytes by file name: histograms, funnel and contact sheet."""
    return {
        "histograms.png": histograms(scores, selection),
        "funnel.png": funnel(summary),
        "contact_sheet.png": contact_sheet(samples),
    }
