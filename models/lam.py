"""Latent action model (LAM): learns discrete actions from unlabelled video.

Action convention, used everywhere in this package: for T frames there are T-1 actions, shaped
(B, T-1); action[t] is the transition from frame t to frame t+1 and conditions frame t+1.

Encoder: causal ST-transformer over patches of x_0..x_{T-1}. Each frame's tokens embed its
patches, their change since the previous frame (zero for frame 0) and a cost volume: for each
of the 9 motions (still, or `displacement` pixels in one of 8 directions), how far each pixel
is from the previous frame moved that way. So the motion is in the input rather than something
the small temporal attention has to discover. Its output at frame t+1 (which has seen
x_0..x_{t+1}) is mean-pooled over space into the continuous latent a_t, quantized to one of
`num_actions` codes.

Decoder: causal ST-transformer over x_0..x_{T-2} with the embedded a_t added to every token of
frame t. Its output at frame t predicts frame t+1 as, per patch, a softmax mix of frame t moved
by each of the 9 motions, plus a residual change. It starts as "nothing moves" (the copy
baseline), so the loss (and so the action code) is about what moved. The decoder exists for
training only: at play time the user's action index replaces a_t. Frames are (B, T, C, H, W)
floats in [0, 1]; patch 16 pads 90 rows to 96.

Why the change embedding (measured on the synthetic platformer, `tiny` preset at 45x80, 400
steps): with frame patches only, the encoder's output varied ~10x more with the spatial position
embedding than with content, its latents carried nothing a linear probe could read, and the codes
had 0.02-0.04 bits of mutual information with the true actions (0.02 shuffled) even without the
VQ bottleneck. With the change embedding the codes reach 0.66-0.79 bits after 100-300 steps,
0.78-0.86 when both embeddings end in a LayerNorm, which puts patch content on the scale of the
unit-scale position embedding (LayerNorm alone, without the change: codes collapse onto one or
two).

Why the moving decoder and the cost volume (measured on the demo's curated 160x90 clips of the
game with 4-pixel tiles, `tiny`, displacement 4, 2-frame windows, 600 steps): a decoder that
only predicts a per-patch change could not draw a one-tile scroll. Told the true scroll
direction, its held-out next-frame MSE was 0.00206 against 0.00229 told nothing (copying:
0.00269), so a code had little reason to carry the direction, and every scrolling code mixed
left and right. The moving decoder gets 0.00059 told the direction and 0.00177 told nothing.
With it, codes learned from the plain encoder still mixed directions (scroll NMI 0.49-0.58);
with the cost volume each code held one direction, or all but one small code (NMI 0.69-0.71 over
two seeds, MSE 0.00055-0.00099; a prototype comparing 15 moves, up to 8 px sideways: 0.71-0.75).
Costs pooled per patch did not separate them (0.51-0.58). With today's 8-pixel tiles and
displacement 8, three demo runs gave NMI 0.41-0.45 with the true actions (0.23-0.45 before),
next-frame PSNR 31.6-35.5 dB against copying's 22.2-28.0.
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


def motions(displacement: int) -> list[tuple[int, int]]:
    """The 9 (dy, dx) pixel moves the LAM knows: still, or `displacement` in 8 directions."""
    return [(dy * displacement, dx * displacement) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def moved_copies(
    images: torch.Tensor, displacement: int, height: int, width: int
) -> list[torch.Tensor]:
    """`images` (N, C, H, W) moved by each of `motions(displacement)` (edge pixels repeated), as
    (N, C, height, width) views on a canvas padded at the bottom and right."""
    d = displacement
    h, w = images.shape[-2:]
    padded = F.pad(images, (d, d + width - w, d, d + height - h), mode="replicate")
    return [
        padded[..., d - dy : d - dy + height, d - dx : d - dx + width]
        for dy, dx in motions(displacement)
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
        num_motions = len(motions(config.displacement))
        self.cost_embed = nn.Sequential(
            nn.Linear(config.patch_size**2 * num_motions, config.dim), LayerNormFP32(config.dim)
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
        self.to_motion = nn.Sequential(
            LayerNormFP32(config.dim), nn.Linear(config.dim, num_motions)
        )
        # Start as "nothing moves", the copy baseline: no residual, and 87% of each patch's
        # weight on the still motion (a hard one-hot would have no gradient to the others).
        nn.init.zeros_(self.to_pixels[1].weight)
        nn.init.zeros_(self.to_motion[1].weight)
        with torch.no_grad():
            self.to_motion[1].bias.copy_(
                torch.tensor([4.0 if m == (0, 0) else 0.0 for m in motions(config.displacement)])
            )

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
        tokens = (
            self.encoder_embed(patches)
            + self.change_embed(patches - previous)
            + self.cost_embed(patchify(self.motion_costs(frames), cfg.patch_size))
        )
        hidden = self.encoder(tokens)
        return self.to_action(hidden[:, 1:].mean(dim=2))

    def motion_costs(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 9, H, W): squared distance, averaged over colour, of each pixel of frame t from
        frame t-1 moved by each motion (frame 0 is compared with itself)."""
        b, t, c, h, w = frames.shape
        flat = frames.reshape(b * t, c, h, w)
        previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1).reshape(b * t, c, h, w)
        costs = [
            (flat - moved).square().mean(dim=1)
            for moved in moved_copies(previous, self.config.displacement, h, w)
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
        weights = self.to_motion(hidden).softmax(dim=-1).view(b * t, 1, grid_h, 1, grid_w, 1, -1)
        copies = moved_copies(
            frames.reshape(b * t, c, h, w), cfg.displacement, grid_h * p, grid_w * p
        )
        moved = sum(
            copy.reshape(b * t, c, grid_h, p, grid_w, p) * weights[..., k]
            for k, copy in enumerate(copies)
        )
        moved = moved.view(b, t, c, grid_h * p, grid_w * p)[..., :h, :w]
        return moved + unpatchify(self.to_pixels(hidden), p, h, w, c)

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
