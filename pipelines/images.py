"""Frames between the two layouts, and pictures for artifacts.

Video is uint8 (..., H, W, C) as decoded; the models take float (..., C, H, W) in [0, 1].
`to_model` and `to_uint8` are the only conversions between them. `frame_grid` and `save_png`
make artifact pictures (ground truth over prediction).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch


def to_model(frames: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """(..., H, W, C) uint8 (decoded video) -> (..., C, H, W) float32 in [0, 1] on `device`."""
    tensor = torch.as_tensor(frames).to(device, non_blocking=True)
    return tensor.movedim(-1, -3).float().div_(255.0)


def to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """(..., C, H, W) float in [0, 1] (the models' layout) -> (..., H, W, C) uint8."""
    array = (
        frames.detach().float().clamp(0, 1).cpu().numpy()
        if isinstance(frames, torch.Tensor)
        else frames
    )
    array = np.moveaxis(array, -3, -1)
    return (array * 255.0 + 0.5).astype(np.uint8)


def frame_grid(*rows_of_clips: torch.Tensor, gap: int = 2) -> np.ndarray:
    """One picture: for each sample, one row per tensor (e.g. truth, then reconstruction).

    Each tensor is (B, T, C, H, W); the grid has B * len(rows_of_clips) rows and T columns.
    """
    clips = [to_uint8(c) for c in rows_of_clips]
    batch, frames, height, width, _ = clips[0].shape
    rows = []
    for b in range(batch):
        for clip in clips:
            row = np.full((height, frames * (width + gap) - gap, 3), 255, np.uint8)
            for t in range(frames):
                row[:, t * (width + gap) : t * (width + gap) + width] = clip[b, t]
            rows.append(row)
    spacer = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([part for row in rows for part in (row, spacer)][:-1])


def save_png(image: np.ndarray, path: Path) -> Path:
    """Write an RGB uint8 image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
