"""Model hyperparameters as frozen dataclasses, with presets `tiny`, `coinrun` and `paper`.

`tiny` runs in seconds on CPU (tests, CI); `coinrun` is the paper's case study (appendix:
tokenizer 8+8 layers d=512, 1024 codes, patch 4; LAM |A|=6; dynamics 12 layers d=512);
`paper` matches the paper's sizes (tokenizer ~200M, LAM ~300M, dynamics ~10.1B parameters,
checked by counting on the meta device in tests/models/test_configs.py). The paper's exact
layer/width split is not used: widths and depths here are chosen to land on its totals.

Every field is checked in `__post_init__`; errors name the field, e.g.
`config field 'tokenizer.patch_size' must be > 0, got 0`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


def _require(condition: bool, field: str, must: str, got: Any) -> None:
    if not condition:
        raise ValueError(f"config field '{field}' must {must}, got {got!r}")


def _check_positive_ints(config: Any, prefix: str) -> None:
    for f in fields(config):
        value = getattr(config, f.name)
        if f.type in ("int", int):
            _require(
                isinstance(value, int) and not isinstance(value, bool) and value > 0,
                f"{prefix}.{f.name}",
                "be an integer > 0",
                value,
            )


def _check_transformer(config: Any, prefix: str) -> None:
    _require(
        config.dim % config.num_heads == 0 and (config.dim // config.num_heads) % 2 == 0,
        f"{prefix}.dim",
        f"split into num_heads={config.num_heads} heads of even size",
        config.dim,
    )


@dataclass(frozen=True)
class TokenizerConfig:
    """ST-ViViT VQ-VAE: frames (B, T, C, H, W) in [0, 1] -> token ids (B, T, H/p, W/p)."""

    frame_height: int = 90
    frame_width: int = 160
    channels: int = 3
    patch_size: int = 4
    dim: int = 512
    encoder_layers: int = 8
    decoder_layers: int = 8
    num_heads: int = 8
    ffn_mult: int = 4
    num_codes: int = 1024
    code_dim: int = 32
    commitment_weight: float = 0.25
    dead_code_patience: int = 100

    def __post_init__(self) -> None:
        _check_positive_ints(self, "tokenizer")
        _check_transformer(self, "tokenizer")
        _require(
            self.commitment_weight >= 0,
            "tokenizer.commitment_weight",
            "be >= 0",
            self.commitment_weight,
        )

    @property
    def grid_height(self) -> int:
        return math.ceil(self.frame_height / self.patch_size)

    @property
    def grid_width(self) -> int:
        return math.ceil(self.frame_width / self.patch_size)


@dataclass(frozen=True)
class LatentActionConfig:
    """LAM: frames x_1..x_T -> T-1 discrete latent actions; decoder predicts x_{t+1} from x_1..x_t, a_t."""

    frame_height: int = 90
    frame_width: int = 160
    channels: int = 3
    patch_size: int = 16
    dim: int = 512
    encoder_layers: int = 8
    decoder_layers: int = 8
    num_heads: int = 8
    ffn_mult: int = 4
    num_actions: int = 8
    code_dim: int = 32
    commitment_weight: float = 0.25
    dead_code_patience: int = 100
    # Pixels the decoder can move a patch's content per frame, one step in each of the 8
    # directions (see models.lam): one token of the tokenizer's patch, so a scroll the LAM names
    # is one the dynamics model can draw by copying the token one column over.
    displacement: int = 4

    def __post_init__(self) -> None:
        _check_positive_ints(self, "lam")
        _check_transformer(self, "lam")
        _require(
            self.commitment_weight >= 0, "lam.commitment_weight", "be >= 0", self.commitment_weight
        )

    @property
    def grid_height(self) -> int:
        return math.ceil(self.frame_height / self.patch_size)

    @property
    def grid_width(self) -> int:
        return math.ceil(self.frame_width / self.patch_size)


@dataclass(frozen=True)
class DynamicsConfig:
    """MaskGIT ST-transformer over token grids; vocabulary = num_codes + 1 mask token."""

    num_codes: int = 1024
    num_actions: int = 8
    grid_height: int = 23
    grid_width: int = 40
    dim: int = 512
    num_layers: int = 12
    num_heads: int = 8
    ffn_mult: int = 4
    context_frames: int = 16
    mask_rate_min: float = 0.5
    mask_rate_max: float = 1.0

    def __post_init__(self) -> None:
        _check_positive_ints(self, "dynamics")
        _check_transformer(self, "dynamics")
        _require(
            0.0 < self.mask_rate_min <= self.mask_rate_max <= 1.0,
            "dynamics.mask_rate_min",
            f"satisfy 0 < mask_rate_min <= mask_rate_max ({self.mask_rate_max}) <= 1",
            self.mask_rate_min,
        )

    @property
    def mask_token(self) -> int:
        return self.num_codes


@dataclass(frozen=True)
class ModelPreset:
    """The three models of one preset, checked to fit together."""

    name: str
    tokenizer: TokenizerConfig
    lam: LatentActionConfig
    dynamics: DynamicsConfig

    def __post_init__(self) -> None:
        tok, lam, dyn = self.tokenizer, self.lam, self.dynamics
        _require(
            dyn.num_codes == tok.num_codes,
            "dynamics.num_codes",
            f"equal tokenizer.num_codes ({tok.num_codes})",
            dyn.num_codes,
        )
        _require(
            dyn.num_actions == lam.num_actions,
            "dynamics.num_actions",
            f"equal lam.num_actions ({lam.num_actions})",
            dyn.num_actions,
        )
        _require(
            dyn.grid_height == tok.grid_height,
            "dynamics.grid_height",
            f"equal the tokenizer's grid height ({tok.grid_height})",
            dyn.grid_height,
        )
        _require(
            dyn.grid_width == tok.grid_width,
            "dynamics.grid_width",
            f"equal the tokenizer's grid width ({tok.grid_width})",
            dyn.grid_width,
        )
        _require(
            (lam.frame_height, lam.frame_width) == (tok.frame_height, tok.frame_width),
            "lam.frame_height",
            f"match the tokenizer's frame size {tok.frame_height}x{tok.frame_width} (HxW)",
            (lam.frame_height, lam.frame_width),
        )


PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(
        name="tiny",
        tokenizer=TokenizerConfig(
            dim=64,
            encoder_layers=2,
            decoder_layers=2,
            num_heads=4,
            ffn_mult=2,
            # 8-pixel patches, a 12x20 grid: one tile of the demo's game (pipelines.synth.game)
            # per token. A step of the tokenizer or dynamics model costs 7x less than with the
            # 920 tokens of patch 4 (0.14 s vs 1.0 s, 0.08 vs 0.53 s on one CPU core).
            patch_size=8,
            num_codes=256,
            code_dim=16,
            dead_code_patience=20,
        ),
        lam=LatentActionConfig(
            dim=64,
            encoder_layers=2,
            decoder_layers=2,
            num_heads=4,
            ffn_mult=2,
            num_actions=8,
            code_dim=16,
            # 0.25 pulled the demo's latents onto 1-2 codes within a few hundred steps; at 0.05
            # (lr 3e-4) all 8 stay in use and NMI with the true actions holds at ~0.2.
            commitment_weight=0.05,
            dead_code_patience=20,
            displacement=8,
        ),
        dynamics=DynamicsConfig(
            num_codes=256,
            num_actions=8,
            grid_height=12,
            grid_width=20,
            dim=64,
            num_layers=2,
            num_heads=4,
            ffn_mult=2,
        ),
    ),
    "coinrun": ModelPreset(
        name="coinrun",
        tokenizer=TokenizerConfig(dim=512, encoder_layers=8, decoder_layers=8, num_heads=8),
        lam=LatentActionConfig(
            dim=512, encoder_layers=8, decoder_layers=8, num_heads=8, num_actions=6
        ),
        dynamics=DynamicsConfig(num_actions=6, dim=512, num_layers=12, num_heads=8),
    ),
    "paper": ModelPreset(
        name="paper",
        tokenizer=TokenizerConfig(dim=768, encoder_layers=11, decoder_layers=11, num_heads=12),
        lam=LatentActionConfig(dim=1024, encoder_layers=9, decoder_layers=9, num_heads=16),
        dynamics=DynamicsConfig(dim=5120, num_layers=24, num_heads=40),
    ),
}


def get_preset(name: str) -> ModelPreset:
    """The preset called `name` (`tiny`, `coinrun` or `paper`)."""
    if name not in PRESETS:
        raise ValueError(f"config field 'preset' must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]
