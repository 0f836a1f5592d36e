"""Vector quantizer shared by the video tokenizer (1024 codes) and the latent action model (|A| codes).

Straight-through gradients, codebook + commitment losses (VQ-VAE), batch codebook usage and
perplexity for logging, and dead-code reset: a code no batch has picked for `dead_code_patience`
training steps is moved onto a random encoder output of the current batch, so the codebook
does not collapse onto a few codes.

Under data parallel training each rank resets from its own batch: broadcast the codebook from
rank 0 after the optimizer step (or use one seed everywhere) to keep replicas identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # same shape as the input; straight-through gradients to the input
    codes: torch.Tensor  # input shape without the last dim, int64
    loss: torch.Tensor  # codebook loss + commitment_weight * commitment loss
    perplexity: torch.Tensor  # exp(entropy) of this batch's code histogram, 1..num_codes
    usage: torch.Tensor  # fraction of codes used in this batch


class VectorQuantizer(nn.Module):
    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        commitment_weight: float = 0.25,
        dead_code_patience: int = 100,
    ) -> None:
        super().__init__()
        self.num_codes = num_codes
        self.commitment_weight = commitment_weight
        self.dead_code_patience = dead_code_patience
        self.codebook = nn.Parameter(torch.randn(num_codes, code_dim) / code_dim**0.5)
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long))

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors for integer `codes` of any shape: (..., code_dim)."""
        return F.embedding(codes, self.codebook)

    def nearest_codes(self, latents: torch.Tensor) -> torch.Tensor:
        flat = latents.reshape(-1, latents.shape[-1]).float()
        codebook = self.codebook.float()
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.pow(2).sum(1)[None]
        )
        return distances.argmin(dim=1).view(latents.shape[:-1])

    def forward(self, latents: torch.Tensor) -> QuantizerOutput:
        codes = self.nearest_codes(latents)
        chosen = self.lookup(codes).to(latents.dtype)
        codebook_loss = F.mse_loss(chosen.float(), latents.detach().float())
        commitment_loss = F.mse_loss(latents.float(), chosen.detach().float())
        quantized = latents + (chosen - latents).detach()

        counts = torch.bincount(codes.flatten(), minlength=self.num_codes).float()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        if self.training and self.dead_code_patience > 0:
            self._reset_dead_codes(counts, latents)
        return QuantizerOutput(
            quantized=quantized,
            codes=codes,
            loss=codebook_loss + self.commitment_weight * commitment_loss,
            perplexity=perplexity,
            usage=(counts > 0).float().mean(),
        )

    @torch.no_grad()
    def _reset_dead_codes(self, counts: torch.Tensor, latents: torch.Tensor) -> None:
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        dead = (self.steps_unused >= self.dead_code_patience).nonzero().flatten()
        if dead.numel() == 0:
            return
        flat = latents.detach().reshape(-1, latents.shape[-1])
        picks = torch.randint(0, flat.shape[0], (dead.numel(),), device=flat.device)
        self.codebook[dead] = flat[picks].to(self.codebook.dtype)
        self.steps_unused[dead] = 0
