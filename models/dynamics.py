"""MaskGIT dynamics model: an ST-transformer over token grids, conditioned on latent actions.

Tokens are int64 (B, T, grid_h, grid_w) in [0, num_codes]; id `num_codes` is the mask token.
Action convention (as in models.lam): T frames have T-1 actions (B, T-1); action[t] is the
transition t -> t+1 and conditions frame t+1. Internally each frame gets the embedding of the
action that led into it, and frame 0 gets a learned "no action" embedding (index num_actions):
see `actions_per_frame`.

Training (`masked_token_loss`): frame 0 is always kept unmasked as context, as the prompt frame
is at play time; each clip draws a rate r ~ U[mask_rate_min, mask_rate_max] (paper: U[0.5, 1])
and masks every token of frames 1..T-1 with probability r. Cross-entropy on masked tokens only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.configs import DynamicsConfig
from models.st_transformer import STTransformer, TemporalKVCache


def actions_per_frame(actions: torch.Tensor, num_actions: int) -> torch.Tensor:
    """Transition actions (B, T-1) -> per-frame actions (B, T): "no action" for frame 0, then action[t-1]."""
    no_action = actions.new_full((actions.shape[0], 1), num_actions)  # also for one-frame prompts
    return torch.cat([no_action, actions], dim=1)


class DynamicsModel(nn.Module):
    def __init__(self, config: DynamicsConfig) -> None:
        super().__init__()
        self.config = config
        tokens = config.grid_height * config.grid_width
        self.token_embed = nn.Embedding(config.num_codes + 1, config.dim)
        self.action_embed = nn.Embedding(config.num_actions + 1, config.dim)
        self.transformer = STTransformer(
            config.dim, config.num_layers, config.num_heads, tokens, config.ffn_mult
        )
        self.head = nn.Linear(config.dim, config.num_codes)

    def new_cache(self) -> TemporalKVCache:
        return TemporalKVCache(self.config.num_layers)

    def forward(
        self,
        tokens: torch.Tensor,
        frame_actions: torch.Tensor,
        cache: TemporalKVCache | None = None,
        commit: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T, grid_h, grid_w, num_codes) for token grids (B, T, grid_h, grid_w).

        `frame_actions` (B, T) holds, per frame, the action that led into it (`actions_per_frame`).
        With `cache`, the frames follow the cached ones (see STTransformer.forward).
        """
        b, t, gh, gw = tokens.shape
        if (gh, gw) != (self.config.grid_height, self.config.grid_width):
            raise ValueError(
                f"tokens must be (B, T, {self.config.grid_height}, {self.config.grid_width}), got {tuple(tokens.shape)}"
            )
        if frame_actions.shape != (b, t):
            raise ValueError(f"frame_actions must be {(b, t)}, got {tuple(frame_actions.shape)}")
        x = self.token_embed(tokens.flatten(2)) + self.action_embed(frame_actions)[:, :, None, :]
        logits = self.head(self.transformer(x, cache=cache, commit=commit))
        return logits.view(b, t, gh, gw, -1)

    def masked_token_loss(
        self, tokens: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Cross-entropy on randomly masked tokens of frames 1..T-1; `actions` is (B, T-1)."""
        cfg = self.config
        b, t = tokens.shape[:2]
        if actions.shape != (b, t - 1):
            raise ValueError(f"actions must be (B, T-1) = {(b, t - 1)}, got {tuple(actions.shape)}")
        low, high = cfg.mask_rate_min, cfg.mask_rate_max
        rate = low + (high - low) * torch.rand(
            b, 1, 1, 1, generator=generator, device=tokens.device
        )
        mask = torch.rand(tokens.shape, generator=generator, device=tokens.device) < rate
        mask[:, 0] = False
        inputs = tokens.masked_fill(mask, cfg.mask_token)
        logits = self(inputs, actions_per_frame(actions, cfg.num_actions))
        return F.cross_entropy(logits[mask].float(), tokens[mask])
