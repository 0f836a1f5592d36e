"""ST-ViViT VQ-VAE video tokenizer: frames -> discrete token ids -> frames.

Frames are float tensors (B, T, C, H, W) with values in [0, 1]. Frames whose height or width
is not a multiple of the patch are padded (edge pixels repeated) inside the model and cropped
back on decode: 160x90 with patch 4 becomes 160x92, a 23x40 grid = 920 tokens per frame.
Token ids are int64 tensors (B, T, grid_height, grid_width) in [0, num_codes).

Encoder and decoder are causal in time: tokens of frame t depend on frames <= t only, so the
prompt of a play session can be tokenized and decoded frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.configs import TokenizerConfig
from models.st_transformer import LayerNormFP32, STTransformer
from models.vq import VectorQuantizer


def patchify(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, gh*gw, patch*patch*C), padding H and W up to multiples of patch."""
    b, t, c, h, w = frames.shape
    pad_h, pad_w = -h % patch, -w % patch
    if pad_h or pad_w:
        flat = frames.reshape(b * t, c, h, w)
        frames = F.pad(flat, (0, pad_w, 0, pad_h), mode="replicate").view(
            b, t, c, h + pad_h, w + pad_w
        )
    return rearrange(frames, "b t c (gh p) (gw q) -> b t (gh gw) (p q c)", p=patch, q=patch)


def unpatchify(
    patches: torch.Tensor, patch: int, height: int, width: int, channels: int
) -> torch.Tensor:
    """Inverse of `patchify`, cropping the padding: -> (B, T, C, height, width)."""
    grid_h, grid_w = -(-height // patch), -(-width // patch)
    frames = rearrange(
        patches,
        "b t (gh gw) (p q c) -> b t c (gh p) (gw q)",
        gh=grid_h,
        gw=grid_w,
        p=patch,
        q=patch,
        c=channels,
    )
    return frames[..., :height, :width]


@dataclass
class TokenizerOutput:
    reconstruction: torch.Tensor  # (B, T, C, H, W), unclamped
    codes: torch.Tensor  # (B, T, grid_h, grid_w)
    loss: torch.Tensor  # reconstruction MSE + VQ loss
    reconstruction_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


class VideoTokenizer(nn.Module):
    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        tokens = config.grid_height * config.grid_width
        patch_dim = config.patch_size**2 * config.channels
        self.patch_embed = nn.Linear(patch_dim, config.dim)
        self.encoder = STTransformer(
            config.dim, config.encoder_layers, config.num_heads, tokens, config.ffn_mult,
            position_scale=0.0,
        )  # fmt: skip
        self.to_code = nn.Linear(config.dim, config.code_dim)
        self.quantizer = VectorQuantizer(
            config.num_codes, config.code_dim, config.commitment_weight, config.dead_code_patience
        )
        self.from_code = nn.Linear(config.code_dim, config.dim)
        self.decoder = STTransformer(
            config.dim, config.decoder_layers, config.num_heads, tokens, config.ffn_mult,
            position_scale=0.0,
        )  # fmt: skip
        self.to_pixels = nn.Sequential(LayerNormFP32(config.dim), nn.Linear(config.dim, patch_dim))
        nn.init.zeros_(self.to_pixels[1].weight)  # start as a mid-grey frame, not as noise
        nn.init.constant_(self.to_pixels[1].bias, 0.5)

    def _latents(self, frames: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        expected = (cfg.channels, cfg.frame_height, cfg.frame_width)
        if frames.ndim != 5 or tuple(frames.shape[2:]) != expected:
            raise ValueError(
                f"frames must be (B, T, {', '.join(map(str, expected))}), got {tuple(frames.shape)}"
            )
        return self.to_code(self.encoder(self.patch_embed(patchify(frames, cfg.patch_size))))

    def _pixels(self, quantized: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        patches = self.to_pixels(self.decoder(self.from_code(quantized)))
        return unpatchify(patches, cfg.patch_size, cfg.frame_height, cfg.frame_width, cfg.channels)

    def _grid(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.view(*codes.shape[:2], self.config.grid_height, self.config.grid_width)

    def forward(self, frames: torch.Tensor) -> TokenizerOutput:
        vq = self.quantizer(self._latents(frames))
        reconstruction = self._pixels(vq.quantized)
        reconstruction_loss = F.mse_loss(reconstruction.float(), frames.float())
        return TokenizerOutput(
            reconstruction=reconstruction,
            codes=self._grid(vq.codes),
            loss=reconstruction_loss + vq.loss,
            reconstruction_loss=reconstruction_loss,
            perplexity=vq.perplexity,
            usage=vq.usage,
        )

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, C, H, W) in [0, 1] -> token ids (B, T, grid_h, grid_w)."""
        return self._grid(self.quantizer.nearest_codes(self._latents(frames)))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T, grid_h, grid_w) -> frames (B, T, C, H, W) clamped to [0, 1]."""
        quantized = self.quantizer.lookup(codes.flatten(2))
        return self._pixels(quantized).clamp(0.0, 1.0)
