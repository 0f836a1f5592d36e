"""Model hyperparameters as frozen dataclasses, with presets (`PRESETS`).

`tiny` runs in seconds on CPU (tests, CI, the built-in game's demo); `small` is `tiny` for real
game footage on CPU (the CoinRun demo); `tiny-paper-form` and `small-paper-form` are those two
with every departure from the paper that has a switch turned off (`paper_form`), to measure
what they buy; `coinrun` is the paper's case study (appendix: tokenizer 8+8 layers d=512, 1024
codes, patch 4; LAM |A|=6; dynamics 12 layers d=512);
`paper` matches the paper's sizes (tokenizer ~200M, LAM ~300M, dynamics ~10.1B parameters,
checked by counting on the meta device in tests/models/test_configs.py). The paper's exact
layer/width split is not used: widths and depths here are chosen to land on its totals.

Every field is checked in `__post_init__`; errors name the field, e.g.
`config field 'tokenizer.patch_size' must be > 0, got 0`.
"""

from __future__ import annotations

import dataclasses
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
    # Departures from the paper's LAM (models.lam), each off by default (the paper's form):
    # motion_decoder: the decoder draws frame t+1 as a per-patch mix of frame t moved by each of
    #   the motions (still, or each displacement in 8 directions) plus a residual, instead of
    #   drawing its pixels outright;
    # cost_volume: the encoder also sees, per pixel, how far frame t is from frame t-1 moved by
    #   each of those motions.
    motion_decoder: bool = False
    cost_volume: bool = False
    displacements: tuple[int, ...] = (4,)  # pixels a frame; each > 0
    # The motion decoder's initial logit for "still" (the others start at 0): 4 puts 87% of the
    # weight on it with one displacement, a start close to copying that still lets the moves
    # learn; higher starts closer to copying, for footage that barely moves frame to frame.
    still_bias: float = 4.0

    def __post_init__(self) -> None:
        _check_positive_ints(self, "lam")
        _check_transformer(self, "lam")
        _require(
            len(self.displacements) > 0 and all(d > 0 for d in self.displacements),
            "lam.displacements",
            "be one or more pixel steps > 0",
            self.displacements,
        )
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
    # Departures from the paper's dynamics model (models.dynamics), each off by default (the
    # paper's form): each token's input also embeds the frame before's token at its place;
    # each prediction mixes copying one of the 9 tokens around it in the frame before with
    # generating a code; spatial attention gets 2D rotary positions.
    previous_token_input: bool = False
    copy_head: bool = False
    spatial_rotary: bool = False

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


TINY = ModelPreset(
    name="tiny",
    tokenizer=TokenizerConfig(
        dim=64,
        encoder_layers=2,
        decoder_layers=2,
        num_heads=4,
        ffn_mult=2,
        # 8-pixel patches, a 12x20 grid of 240 tokens (the paper's patch 4 gives 920, and a
        # step of the tokenizer or the dynamics model costs ~7x more): one tile of the
        # built-in game (pipelines.synth.game) a token.
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
        # A low commitment keeps all 8 codes in use (0.25 pulled the latents onto 1-2).
        commitment_weight=0.05,
        dead_code_patience=20,
        motion_decoder=True,
        cost_volume=True,
        displacements=(8,),  # a whole token, one tile of the built-in game
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
        previous_token_input=True,
        copy_head=True,
        spatial_rotary=True,
    ),
)


# The switches of the departures from the paper's design, each False in the paper's form. One
# departure has none: the LAM's encoder always sees each patch's change since the frame before.
DEPARTURES: dict[str, tuple[str, ...]] = {
    "lam": ("motion_decoder", "cost_volume"),
    "dynamics": ("previous_token_input", "copy_head", "spatial_rotary"),
}


def paper_form(preset: ModelPreset, name: str) -> ModelPreset:
    """`preset`'s sizes with every switch of `DEPARTURES` off: the LAM's decoder draws the next
    frame outright and its encoder sees no cost volume; the dynamics model takes no previous
    token, copies nothing and has no 2D rotary positions."""
    return ModelPreset(
        name=name,
        tokenizer=preset.tokenizer,
        lam=dataclasses.replace(preset.lam, **dict.fromkeys(DEPARTURES["lam"], False)),
        dynamics=dataclasses.replace(
            preset.dynamics, **dict.fromkeys(DEPARTURES["dynamics"], False)
        ),
    )


SMALL = ModelPreset(
    name="small",
    tokenizer=dataclasses.replace(TINY.tokenizer, num_codes=1024),
    lam=dataclasses.replace(TINY.lam, displacements=(2, 8)),
    dynamics=dataclasses.replace(TINY.dynamics, num_codes=1024),
)

PRESETS: dict[str, ModelPreset] = {
    "tiny": TINY,
    # `tiny`'s sizes for real game footage on CPU: the paper's 1024 codes (detailed textures
    # need them; the built-in game's tiles do not, and its dynamics model learns 256 faster),
    # and LAM moves of 2 pixels as well as 8 (a smooth scroll at 160x90 is 0-5 px a frame).
    "small": SMALL,
    "tiny-paper-form": paper_form(TINY, "tiny-paper-form"),
    "small-paper-form": paper_form(SMALL, "small-paper-form"),
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
    """The preset called `name`, one of `PRESETS`."""
    if name not in PRESETS:
        raise ValueError(f"config field 'preset' must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]
