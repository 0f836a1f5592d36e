"""MaskGIT sampling of the next frame's tokens, and `Session`, the play loop a server holds.

A new frame starts fully masked and is filled over `steps` rounds (paper: 25): each round
samples every masked token from softmax(logits / temperature), keeps the most confident
samples and re-masks the rest, the masked share following cos(pi/2 * round/steps).

With the temporal key/value cache, the history's keys/values are computed once when each frame
is committed; a round then runs the transformer on the new frame only, so its cost does not
grow with re-encoding the history. Without the cache every round re-encodes the whole context.
Both draw the same random numbers, so with one generator seed they give the same tokens
(while the history fits the context window; once it slides, the cached frames keep what they
saw of frames that have left the window, the re-encoded ones do not).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from models.dynamics import DynamicsModel, actions_per_frame, previous_frames
from models.st_transformer import TemporalKVCache


def maskgit_fill(
    logits_for: Callable[[torch.Tensor], torch.Tensor],
    batch: int,
    num_tokens: int,
    mask_token: int,
    steps: int = 25,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Fill a fully masked frame (B, num_tokens); `logits_for(tokens)` -> (B, num_tokens, vocab)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    tokens = torch.full((batch, num_tokens), mask_token, dtype=torch.long, device=device)
    for step in range(steps):
        masked = tokens == mask_token
        probs = torch.softmax(logits_for(tokens).float() / temperature, dim=-1)
        sampled = torch.multinomial(probs.view(-1, probs.shape[-1]), 1, generator=generator)
        sampled = sampled.view(batch, num_tokens)
        confidence = probs.gather(-1, sampled[..., None]).squeeze(-1)
        confidence = confidence.masked_fill(~masked, math.inf)
        tokens = torch.where(masked, sampled, tokens)
        # Re-mask the least confident new samples, leaving cos(pi/2 * (step+1)/steps) masked.
        still_masked = math.floor(num_tokens * math.cos(math.pi / 2 * (step + 1) / steps))
        remask = min(still_masked, int(masked.sum(dim=1).min()) - 1)
        if remask > 0:
            lowest = confidence.topk(remask, dim=1, largest=False).indices
            tokens.scatter_(1, lowest, mask_token)
    return tokens


class Session:
    """An interactive rollout: holds the token history (and cache); `step(action)` adds a frame.

    `prompt` is (B, T0, grid_h, grid_w) token ids of the prompt frame(s); frame 0 gets the
    "no action" embedding and later prompt frames `prompt_actions` (B, T0-1), default action 0.
    The context window is `dynamics.config.context_frames` frames (history + the new frame).
    """

    def __init__(
        self,
        dynamics: DynamicsModel,
        prompt: torch.Tensor,
        prompt_actions: torch.Tensor | None = None,
        *,
        steps: int = 25,
        temperature: float = 1.0,
        seed: int = 0,
        use_cache: bool = True,
        context_frames: int | None = None,
    ) -> None:
        cfg = dynamics.config
        self.dynamics = dynamics
        self.steps = steps
        self.temperature = temperature
        self.use_cache = use_cache
        self.context_frames = context_frames or cfg.context_frames
        if self.context_frames < 2:
            raise ValueError(f"context_frames must be >= 2, got {self.context_frames}")
        batch, frames = prompt.shape[:2]
        if prompt_actions is None:
            prompt_actions = torch.zeros(batch, frames - 1, dtype=torch.long, device=prompt.device)
        self.tokens = prompt.long()
        self.frame_actions = actions_per_frame(prompt_actions.long(), cfg.num_actions)
        self.generator = torch.Generator(device=prompt.device).manual_seed(seed)
        self.cache: TemporalKVCache | None = None
        if use_cache:
            self.cache = dynamics.new_cache()
            with torch.no_grad():
                dynamics(
                    self._window(self.tokens),
                    self._window(self.frame_actions),
                    self._window(previous_frames(self.tokens, cfg.mask_token)),
                    self.cache,
                    commit=True,
                )

    def _window(self, per_frame: torch.Tensor) -> torch.Tensor:
        return per_frame[:, -(self.context_frames - 1) :]

    @torch.no_grad()
    def step(self, action: int | torch.Tensor) -> torch.Tensor:
        """Sample the next frame's tokens (B, grid_h, grid_w) for `action` (an int or (B,) tensor)."""
        cfg = self.dynamics.config
        batch, device = self.tokens.shape[0], self.tokens.device
        action = torch.as_tensor(action, dtype=torch.long, device=device).expand(batch)
        if action.min() < 0 or action.max() >= cfg.num_actions:
            raise ValueError(f"action must be in [0, {cfg.num_actions}), got {action.tolist()}")
        grid = (cfg.grid_height, cfg.grid_width)
        new_action, last_frame = action[:, None], self.tokens[:, -1:]

        if self.cache is not None:
            self.cache.keep_last(self.context_frames - 1)

            def logits_for(frame: torch.Tensor) -> torch.Tensor:
                grids = frame.view(batch, 1, *grid)
                logits = self.dynamics(grids, new_action, last_frame, self.cache)
                return logits.view(batch, frame.shape[1], -1)
        else:
            history, history_actions = self._window(self.tokens), self._window(self.frame_actions)
            frame_actions = torch.cat([history_actions, new_action], dim=1)
            previous = self._window(previous_frames(self.tokens, cfg.mask_token))
            previous = torch.cat([previous, last_frame], dim=1)

            def logits_for(frame: torch.Tensor) -> torch.Tensor:
                window = torch.cat([history, frame.view(batch, 1, *grid)], dim=1)
                logits = self.dynamics(window, frame_actions, previous)[:, -1]
                return logits.reshape(batch, frame.shape[1], -1)

        frame = maskgit_fill(
            logits_for,
            batch,
            cfg.grid_height * cfg.grid_width,
            cfg.mask_token,
            self.steps,
            self.temperature,
            self.generator,
            device,
        ).view(batch, 1, *grid)
        if self.cache is not None:
            self.dynamics(frame, new_action, last_frame, self.cache, commit=True)
        self.tokens = torch.cat([self.tokens, frame], dim=1)
        self.frame_actions = torch.cat([self.frame_actions, new_action], dim=1)
        return frame[:, 0]
