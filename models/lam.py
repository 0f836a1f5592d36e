"""Latent action model (LAM): learns discrete actions from unlabelled video.

Action convention, used everywhere in this package: for T frames there are T-1 actions, shaped
(B, T-1); action[t] is the transition from frame t to frame t+1 and conditions frame t+1.

Encoder: causal ST-transformer over patches of x_0..x_{T-1}. Each frame's tokens embed its
patches and their change since the previous frame (zero for frame 0), each through a LayerNorm:
without the change, a small encoder's output follows the position embedding far more than the
content, and its codes carry nothing of the action. Its output at frame t+1 (which has seen
x_0..x_{t+1}) is mean-pooled over space into the continuous latent a_t, quantized to one of
`num_actions` codes.

Decoder: causal ST-transformer over x_0..x_{T-2} with the embedded a_t added to every token of
frame t; its output at frame t predicts frame t+1. The decoder exists for training only: at
play time the user's action index replaces a_t. Frames are (B, T, C, H, W) floats in [0, 1];
patch 16 pads 90 rows to 96.

Two departures from the paper, each a config switch (off is the paper's form; docs/results.md
compares them):
- `motion_decoder`: frame t+1 is drawn, per patch, as a softmax mix of frame t moved by each of
  `motions(displacements)` plus a residual change, starting as "nothing moves" (the copy
  baseline), so the loss, and so the code, is about what moved. A decoder that draws pixels
  outright cannot draw a scroll of a textured scene in minutes of training, so its codes have
  no reason to tell the directions apart.
- `cost_volume`: the encoder also sees, per pixel, how far frame t is from frame t-1 moved by
  each of those motions, so the motion is in its input rather than something its small temporal
  attention must discover.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.configs import LatentActionConfig
from models.st_transformer import LayerNormFP32, STTransformer
from models.tokenizer import patchify, unpatchify
from models.vq import VectorQuantizer


@dataclass
class LatentActionOutput:
    prediction: torch.Tensor  # (B, T-1, C, H, W): predicted frames 1..T-1
    actions: torch.Tensor  # (B, T-1) int64 codes; actions[:, t] is the transition t -> t+1
    loss: torch.Tensor  # prediction MSE + VQ loss
    reconstruction_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


def motions(displacements: tuple[int, ...]) -> list[tuple[int, int]]:
    """The (dy, dx) pixel moves the LAM knows: still, then each displacement in 8 directions."""
    moves = [(0, 0)]
    for d in displacements:
        moves += [(dy * d, dx * d) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    return moves


def moved_copies(
    images: torch.Tensor, displacements: tuple[int, ...], height: int, width: int
) -> list[torch.Tensor]:
    """`images` (N, C, H, W) moved by each of `motions(displacements)` (edge pixels repeated),
    as (N, C, height, width) views on a canvas padded at the bottom and right."""
    d = max(displacements)
    h, w = images.shape[-2:]
    padded = F.pad(images, (d, d + width - w, d, d + height - h), mode="replicate")
    return [
        padded[..., d - dy : d - dy + height, d - dx : d - dx + width]
        for dy, dx in motions(displacements)
    ]


class LatentActionModel(nn.Module):
    def __init__(self, config: LatentActionConfig) -> None:
        super().__init__()
        self.config = config
        tokens = config.grid_height * config.grid_width
        patch_dim = config.patch_size**2 * config.channels
        self.encoder_embed = nn.Sequential(
            nn.Linear(patch_dim, config.dim), LayerNormFP32(config.dim)
        )
        self.change_embed = nn.Sequential(
            nn.Linear(patch_dim, config.dim), LayerNormFP32(config.dim)
        )
        num_motions = len(motions(config.displacements))
        self.cost_embed = (
            nn.Sequential(
                nn.Linear(config.patch_size**2 * num_motions, config.dim),
                LayerNormFP32(config.dim),
            )
            if config.cost_volume
            else None
        )
        self.encoder = STTransformer(
            config.dim, config.encoder_layers, config.num_heads, tokens, config.ffn_mult
        )
        self.to_action = nn.Linear(config.dim, config.code_dim)
        self.quantizer = VectorQuantizer(
            config.num_actions, config.code_dim, config.commitment_weight, config.dead_code_patience
        )
        self.decoder_embed = nn.Linear(patch_dim, config.dim)
        self.action_embed = nn.Linear(config.code_dim, config.dim)
        self.decoder = STTransformer(
            config.dim, config.decoder_layers, config.num_heads, tokens, config.ffn_mult
        )
        self.to_pixels = nn.Sequential(LayerNormFP32(config.dim), nn.Linear(config.dim, patch_dim))
        nn.init.zeros_(self.to_pixels[1].weight)
        nn.init.zeros_(self.to_pixels[1].bias)  # no residual at first: copying, exactly
        self.to_motion = None
        if config.motion_decoder:
            # Start as "nothing moves", the copy baseline: no residual, and most of each patch's
            # weight on the still motion (a hard one-hot would have no gradient to the others).
            self.to_motion = nn.Sequential(
                LayerNormFP32(config.dim), nn.Linear(config.dim, num_motions)
            )
            nn.init.zeros_(self.to_motion[1].weight)
            with torch.no_grad():
                self.to_motion[1].bias.copy_(
                    torch.tensor(
                        [
                            config.still_bias if m == (0, 0) else 0.0
                            for m in motions(config.displacements)
                        ]
                    )
                )
        else:  # the paper's decoder draws the next frame outright; it starts mid-grey
            nn.init.constant_(self.to_pixels[1].bias, 0.5)

    def _check(self, frames: torch.Tensor) -> None:
        cfg = self.config
        expected = (cfg.channels, cfg.frame_height, cfg.frame_width)
        if frames.ndim != 5 or tuple(frames.shape[2:]) != expected or frames.shape[1] < 2:
            raise ValueError(
                f"frames must be (B, T>=2, {', '.join(map(str, expected))}), got {tuple(frames.shape)}"
            )

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Continuous latent actions (B, T-1, code_dim); a_t comes from the output at frame t+1."""
        self._check(frames)
        cfg = self.config
        patches = patchify(frames, cfg.patch_size)
        previous = torch.cat([patches[:, :1], patches[:, :-1]], dim=1)  # frame 0: no change
        tokens = self.encoder_embed(patches) + self.change_embed(patches - previous)
        if self.cost_embed is not None:
            tokens = tokens + self.cost_embed(patchify(self.motion_costs(frames), cfg.patch_size))
        hidden = self.encoder(tokens)[:, 1:]  # (B, T-1, N, D)
        return self.to_action(hidden.mean(dim=2))

    def motion_costs(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 9, H, W): squared distance, averaged over colour, of each pixel of frame t from
        frame t-1 moved by each motion (frame 0 is compared with itself)."""
        b, t, c, h, w = frames.shape
        flat = frames.reshape(b * t, c, h, w)
        previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1).reshape(b * t, c, h, w)
        costs = [
            (flat - moved).square().mean(dim=1)
            for moved in moved_copies(previous, self.config.displacements, h, w)
        ]
        return torch.stack(costs, dim=1).view(b, t, len(costs), h, w)

    def decode(self, frames: torch.Tensor, action_vectors: torch.Tensor) -> torch.Tensor:
        """Predict frames 1..T' from context frames 0..T'-1 (B, T', C, H, W) and a_0..a_{T'-1}."""
        cfg = self.config
        b, t, c, h, w = frames.shape
        p, grid_h, grid_w = cfg.patch_size, cfg.grid_height, cfg.grid_width
        tokens = self.decoder_embed(patchify(frames, p))
        tokens = tokens + self.action_embed(action_vectors)[:, :, None, :]
        hidden = self.decoder(tokens)
        drawn = unpatchify(self.to_pixels(hidden), p, h, w, c)
        if self.to_motion is None:
            return drawn
        weights = self.to_motion(hidden).softmax(dim=-1).view(b * t, 1, grid_h, 1, grid_w, 1, -1)
        copies = moved_copies(
            frames.reshape(b * t, c, h, w), cfg.displacements, grid_h * p, grid_w * p
        )
        moved = sum(
            copy.reshape(b * t, c, grid_h, p, grid_w, p) * weights[..., k]
            for k, copy in enumerate(copies)
        )
        moved = moved.view(b, t, c, grid_h * p, grid_w * p)[..., :h, :w]
        return moved + drawn

    def forward(self, frames: torch.Tensor) -> LatentActionOutput:
        vq = self.quantizer(self.encode(frames))
        prediction = self.decode(frames[:, :-1], vq.quantized)
        reconstruction_loss = F.mse_loss(prediction.float(), frames[:, 1:].float())
        return LatentActionOutput(
            prediction=prediction,
            actions=vq.codes,
            loss=reconstruction_loss + vq.loss,
            reconstruction_loss=reconstruction_loss,
            perplexity=vq.perplexity,
            usage=vq.usage,
        )

    @torch.no_grad()
    def infer_actions(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, C, H, W) -> action codes (B, T-1) in [0, num_actions)."""
        return self.quantizer.nearest_codes(self.encode(frames))

    @torch.no_grad()
    def predict_with_actions(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Predict frames 1..T' from frames 0..T'-1 and given action codes (B, T')."""
        return self.decode(frames, self.quantizer.lookup(actions))
