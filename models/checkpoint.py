"""A trained model on disk: its weights plus which stage and preset built it.

Plain tensors only, loaded with `torch.load(weights_only=True)`: no pickled code is ever run.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.configs import get_preset
from models.dynamics import DynamicsModel
from models.lam import LatentActionModel
from models.tokenizer import VideoTokenizer


def build_model(stage: str, preset: str) -> nn.Module:
    configs = get_preset(preset)
    builders = {
        "tokenizer": lambda: VideoTokenizer(configs.tokenizer),
        "lam": lambda: LatentActionModel(configs.lam),
        "dynamics": lambda: DynamicsModel(configs.dynamics),
    }
    if stage not in builders:
        raise ValueError(f"stage must be one of {sorted(builders)}, got {stage!r}")
    return builders[stage]()


def save_trained(model: nn.Module, stage: str, preset: str, step: int, path: Path) -> Path:
    torch.save({"model": model.state_dict(), "stage": stage, "preset": preset, "step": step}, path)
    return path


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model saved at `path`, in eval mode on `device`."""
    saved = torch.load(path, weights_only=True, map_location="cpu")
    model = build_model(saved["stage"], saved["preset"])
    model.load_state_dict(saved["model"])
    return model.eval().to(device)
