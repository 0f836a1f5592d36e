"""MaskGIT dynamics model: an ST-transformer over token grids, conditioned on latent actions.

Tokens are int64 (B, T, grid_h, grid_w) in [0, num_codes]; id `num_codes` is the mask token.
Action convention (as in models.lam): T frames have T-1 actions (B, T-1); action[t] is the
transition t -> t+1 and conditions frame t+1. Internally each frame gets the embedding of the
action that led into it, and frame 0 gets a learned "no action" embedding (index num_actions):
see `actions_per_frame`. Output logits share the token embedding, as MaskGIT's MLM head does, so
a model that learned to carry a token's embedding forward can name it, rare codes included.

Three departures from the paper, each a config switch (off is the paper's form; docs/results.md
compares them):
- `previous_token_input`: each token's input also embeds the token at its place in the frame
  before (`previous_frames`; the mask token where there is none), from the unmasked frame, as
  the history always is at play time. Most of a game frame is the frame before, moved or not: a
  masked token starts from "as before", and the model learns what changes.
- `copy_head`: each token's prediction mixes copying one of the 9 tokens around it in the frame
  before (`neighbour_tokens`) with generating a code; a small head weighs the 10 choices. When
  the scene scrolls by a token, a masked token's answer is the frame before's token one column
  over, and the model only has to pick the move the action says instead of learning to fetch
  it through attention.
- `spatial_rotary`: 2D rotary positions in spatial attention (STTransformer's `grid`), so "the
  token one column over" is one direction a head learns once.

Training (`masked_loss`): frame 0 is always kept unmasked as context, as the prompt frame is at
play time; each clip draws a rate r ~ U[mask_rate_min, mask_rate_max] (paper: U[0.5, 1]) and
masks every token of frames 1..T-1 with probability r. Cross-entropy on masked tokens only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.configs import DynamicsConfig
from models.st_transformer import FrameAfterCache, STTransformer, TemporalKVCache


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
        grid = (config.grid_height, config.grid_width) if config.spatial_rotary else None
        self.transformer = STTransformer(
            config.dim, config.num_layers, config.num_heads, tokens, config.ffn_mult, grid=grid
        )
        self.head_bias = nn.Parameter(torch.zeros(config.num_codes))
        # Copy one of the frame before's NEIGHBOURS, or generate (the last choice).
        self.to_choice = nn.Linear(config.dim, len(NEIGHBOURS) + 1) if config.copy_head else None

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
        x = self.token_embed(tokens.flatten(2)) + self.previous_embedding(previous)
        x = x + self.action_embed(frame_actions)[:, :, None, :]
        hidden = self.transformer(x, cache=cache, commit=commit)
        candidates = neighbour_tokens(previous).flatten(2, 3)  # (B, T, N, 9)
        return self.log_probs(hidden, candidates).view(b, t, gh, gw, -1)

    def previous_embedding(self, previous: torch.Tensor) -> torch.Tensor | float:
        """What each token's input adds for the frame before's token at its place, (B, T, N, D)
        from `previous` (B, T, grid_h, grid_w); nothing in the paper's form."""
        if not self.config.previous_token_input:
            return 0.0
        return self.token_embed(previous.flatten(2))

    def log_probs(self, hidden: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """The head: log-probabilities (B, T, N, num_codes) from the stack's output (B, T, N, D)
        and the frame before's tokens around each position (B, T, N, 9), `neighbour_tokens`."""
        num_codes = self.config.num_codes
        generated = F.linear(hidden, self.token_embed.weight[:num_codes], self.head_bias)
        if self.to_choice is None:  # the paper's head: generate every token
            return generated.float().log_softmax(-1)
        known = candidates != self.config.mask_token  # no frame before frame 0
        choice = self.to_choice(hidden).float()
        choice = choice.masked_fill(~F.pad(known, (0, 1), value=True), float("-inf")).softmax(-1)
        probs = generated.float().softmax(-1) * choice[..., -1:]
        probs = probs.scatter_add(-1, candidates.clamp_max(num_codes - 1), choice[..., :-1])
        return probs.clamp_min(1e-9).log()

    def next_frame(
        self, cache: TemporalKVCache, previous: torch.Tensor, action: torch.Tensor
    ) -> NextFrame:
        """The frame after the cached ones, for MaskGIT's rounds (see `NextFrame`); `previous`
        (B, 1, grid_h, grid_w) is the last frame's tokens, `action` (B, 1) the one leading on."""
        return NextFrame(self, cache, previous, action)

    def masked_token_loss(
        self, tokens: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Cross-entropy on randomly masked tokens of frames 1..T-1; `actions` is (B, T-1)."""
        return masked_loss(self, tokens, actions, self.config, generator)[0]


class NextFrame:
    """One frame being generated after the cached ones, for MaskGIT's rounds: `logits(tokens)`
    is exactly `model(tokens, action, previous, cache)` for that frame (tests/models/
    test_maskgit.py), with what stays the same from round to round (the embeddings of the frame
    before and of the action, the copy candidates, the cached keys/values: `FrameAfterCache`)
    prepared once. `commit(tokens)` adds the finished frame to the cache, as
    `model(tokens, action, previous, cache, commit=True)` does, without computing its logits.
    """

    def __init__(
        self,
        model: DynamicsModel,
        cache: TemporalKVCache,
        previous: torch.Tensor,
        action: torch.Tensor,
    ) -> None:
        self.model = model
        self.previous_embedding = model.previous_embedding(previous)
        self.action_embedding = model.action_embed(action)[:, :, None, :]
        self.candidates = neighbour_tokens(previous).flatten(2, 3)
        self.stack = FrameAfterCache(model.transformer, cache)

    def _hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.model.token_embed(tokens.flatten(2)) + self.previous_embedding
        return self.stack(x + self.action_embedding)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (B, 1, grid_h, grid_w, num_codes) for the frame's tokens so far
        (B, 1, grid_h, grid_w), masked ones included."""
        hidden = self._hidden(tokens)
        return self.model.log_probs(hidden, self.candidates).view(*tokens.shape, -1)

    def commit(self, tokens: torch.Tensor) -> None:
        """Add the frame with its final tokens (B, 1, grid_h, grid_w) to the cache."""
        self._hidden(tokens)
        self.stack.commit()


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
