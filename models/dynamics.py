"""MaskGIT dynamics model: an ST-transformer over token grids, conditioned on latent actions.

Tokens are int64 (B, T, grid_h, grid_w) in [0, num_codes]; id `num_codes` is the mask token.
Action convention (as in models.lam): T frames have T-1 actions (B, T-1); action[t] is the
transition t -> t+1 and conditions frame t+1. Internally each frame gets the embedding of the
action that led into it, and frame 0 gets a learned "no action" embedding (index num_actions):
see `actions_per_frame`.

Each frame's token embeddings also get the embedding of the token at the same position in the
frame before (`previous_frames`; the mask token where there is none), from the unmasked frame,
as the history always is at play time. Most of a game frame is the frame before, moved or not:
with the previous token in its own input, a masked token starts from "as before" and the model
learns what changes, instead of first learning to fetch every code through temporal attention.
Measured on the demo's token shards (`tiny` at patch 4, 920 tokens a frame, 240 steps):
next-frame argmax accuracy 0.72 -> 0.84, codes under 0.1% of the training tokens 0.18 -> 0.52,
and 4 frames into a free rollout 0.76 of tokens right with the LAM's actions against 0.66 with
random ones (0.66 and 0.64 without). The mask rates and everything else are the paper's.

Spatial attention also has 2D rotary positions (STTransformer's `grid`): "the token one
column over" is then one direction a head learns once, rather than a different pair of positions
everywhere.

Each token's prediction is a mix: copy one of the 9 tokens around it in the frame before (the
same place or one row / column over, `neighbour_tokens`), or generate a code from the shared
embedding; a small head weighs the 10 choices. When the scene scrolls by a token, a masked
token's answer is the frame before's token one column over, so the model only has to pick the
move the action says. Without it, the `tiny` model had to learn to fetch that token through
attention, and did not in minutes of CPU: trained offline on the demo's token shards of the
random-tile ground (patch 4 on 4-pixel tiles; 600 steps, lr 6e-3, 8 rollouts of 5 frames per
action), rollouts held the scene for every action, even with the true scroll (left / none /
right, read off the tokens) as the action, and it got 25-35% of the tokens that change right
when teacher-forced (copying gets 0%). With the copy choice, 400 steps and the LAM's codes: 57%
of changing tokens right, and rollouts holding the code whose true frames scroll right scrolled
right one column in 100% of frames, the two left codes left in 100% and 90%, the still codes
stayed.

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


def previous_frames(tokens: torch.Tensor, mask_token: int) -> torch.Tensor:
    """For frames (B, T, grid_h, grid_w): the frame before each; mask tokens before the first."""
    return torch.cat([torch.full_like(tokens[:, :1], mask_token), tokens[:, :-1]], dim=1)


NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def neighbour_tokens(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, grid_h, grid_w) -> (B, T, grid_h, grid_w, 9): at (i, j), the tokens at
    (i + dy, j + dx) for each (dy, dx) in NEIGHBOURS, edge tokens repeated."""
    grid_h, grid_w = frames.shape[-2:]
    device = frames.device
    around = []
    for dy, dx in NEIGHBOURS:
        rows = (torch.arange(grid_h, device=device) + dy).clamp(0, grid_h - 1)
        cols = (torch.arange(grid_w, device=device) + dx).clamp(0, grid_w - 1)
        around.append(frames[:, :, rows][:, :, :, cols])
    return torch.stack(around, dim=-1)


class DynamicsModel(nn.Module):
    def __init__(self, config: DynamicsConfig) -> None:
        super().__init__()
        self.config = config
        tokens = config.grid_height * config.grid_width
        self.token_embed = nn.Embedding(config.num_codes + 1, config.dim)
        self.action_embed = nn.Embedding(config.num_actions + 1, config.dim)
        self.transformer = STTransformer(
            config.dim, config.num_layers, config.num_heads, tokens, config.ffn_mult,
            grid=(config.grid_height, config.grid_width),
        )  # fmt: skip
        # Output logits share the token embedding (as MaskGIT's MLM head does): a model that
        # learned to carry a token's embedding forward can name it for every code, rare ones
        # included. With a separate head the demo model copied codes under 0.1% of the training
        # tokens right 4% of the time (18% tied; next-frame accuracy 0.67 -> 0.72 at 240 steps).
        self.head_bias = nn.Parameter(torch.zeros(config.num_codes))
        # Copy one of the frame before's NEIGHBOURS, or generate (the last choice).
        self.to_choice = nn.Linear(config.dim, len(NEIGHBOURS) + 1)

    def new_cache(self) -> TemporalKVCache:
        return TemporalKVCache(self.config.num_layers)

    def forward(
        self,
        tokens: torch.Tensor,
        frame_actions: torch.Tensor,
        previous: torch.Tensor,
        cache: TemporalKVCache | None = None,
        commit: bool = False,
    ) -> torch.Tensor:
        """Log-probabilities (B, T, grid_h, grid_w, num_codes), usable as logits, for token grids
        (B, T, grid_h, grid_w).

        `frame_actions` (B, T) holds, per frame, the action that led into it (`actions_per_frame`);
        `previous` (B, T, grid_h, grid_w) the unmasked frame before each (`previous_frames`).
        With `cache`, the frames follow the cached ones (see STTransformer.forward).
        """
        b, t, gh, gw = tokens.shape
        if (gh, gw) != (self.config.grid_height, self.config.grid_width):
            raise ValueError(
                f"tokens must be (B, T, {self.config.grid_height}, {self.config.grid_width}), got {tuple(tokens.shape)}"
            )
        if frame_actions.shape != (b, t):
            raise ValueError(f"frame_actions must be {(b, t)}, got {tuple(frame_actions.shape)}")
        if previous.shape != tokens.shape:
            raise ValueError(f"previous must be {tuple(tokens.shape)}, got {tuple(previous.shape)}")
        x = self.token_embed(tokens.flatten(2)) + self.token_embed(previous.flatten(2))
        x = x + self.action_embed(frame_actions)[:, :, None, :]
        hidden = self.transformer(x, cache=cache, commit=commit)
        num_codes = self.config.num_codes
        generated = F.linear(hidden, self.token_embed.weight[:num_codes], self.head_bias)
        candidates = neighbour_tokens(previous).flatten(2, 3)  # (B, T, N, 9)
        known = candidates != self.config.mask_token  # no frame before frame 0
        choice = self.to_choice(hidden).float()
        choice = choice.masked_fill(~F.pad(known, (0, 1), value=True), float("-inf")).softmax(-1)
        probs = generated.float().softmax(-1) * choice[..., -1:]
        probs = probs.scatter_add(-1, candidates.clamp_max(num_codes - 1), choice[..., :-1])
        return probs.clamp_min(1e-9).log().view(b, t, gh, gw, -1)

    def masked_token_loss(
        self, tokens: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Cross-entropy on randomly masked tokens of frames 1..T-1; `actions` is (B, T-1)."""
        return masked_loss(self, tokens, actions, self.config, generator)[0]


def masked_prediction(
    model: nn.Module,
    tokens: torch.Tensor,
    actions: torch.Tensor,
    config: DynamicsConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MaskGIT training step's logits and which tokens (B, T, grid_h, grid_w) were masked.

    Each clip draws r ~ U[mask_rate_min, mask_rate_max] and masks tokens of frames 1..T-1 with
    probability r; frame 0 stays, as the prompt frame does at play time. `model` is the
    DynamicsModel or its DDP/FSDP wrapper, whose forward is the one that syncs gradients.
    """
    rate = torch.empty(tokens.shape[0], 1, 1, 1, device=tokens.device)
    rate.uniform_(config.mask_rate_min, config.mask_rate_max, generator=generator)
    mask = torch.rand(tokens.shape, device=tokens.device, generator=generator) < rate
    mask[:, 0] = False
    logits = model(
        tokens.masked_fill(mask, config.mask_token),
        actions_per_frame(actions, config.num_actions),
        previous_frames(tokens, config.mask_token),
    )
    return logits, mask


def masked_loss(
    model: nn.Module,
    tokens: torch.Tensor,
    actions: torch.Tensor,
    config: DynamicsConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MaskGIT training loss (cross-entropy on the masked tokens) and the masked tokens'
    argmax accuracy, for tokens (B, T, grid_h, grid_w) and actions (B, T-1); `model` as in
    `masked_prediction`."""
    b, t = tokens.shape[:2]
    if actions.shape != (b, t - 1):
        raise ValueError(f"actions must be (B, T-1) = {(b, t - 1)}, got {tuple(actions.shape)}")
    logits, mask = masked_prediction(model, tokens, actions, config, generator)
    picked = logits[mask].float()
    loss = F.cross_entropy(picked, tokens[mask])
    accuracy = (picked.argmax(-1) == tokens[mask]).float().mean()
    return loss, accuracy
