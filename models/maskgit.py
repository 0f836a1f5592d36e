"""MaskGIT sampling of the next frame's tokens, and `Session`, the play loop a server holds.

A new frame starts fully masked and is filled over at most `steps` rounds (paper: 25): each
round samples every masked token from softmax(logits / temperature), keeps the most confident
samples and re-masks the rest, the masked share following cos(pi/2 * round/steps). With
`confident` set, a round also keeps every sample the model gave more than that probability, and
the frame is done as soon as nothing is masked: most tokens of a game frame are the frame
before's, moved or not, and the model is sure of them from the first round, so its rounds go to
the few tokens it is unsure of.

With the temporal key/value cache, the history's keys/values are computed once when each frame
is committed; a round then runs the transformer on the new frame only (`DynamicsModel.
next_frame`, which also keeps what does not change between rounds), so its cost does not grow
with re-encoding the history. Without the cache every round re-encodes the whole context.
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


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw from each row of `probs` (..., vocab), by inverting its cumulative sum at a
    uniform number: one random number a token (torch.multinomial draws one per code)."""
    cumulative = probs.cumsum(-1)
    uniform = torch.rand(
        (*probs.shape[:-1], 1), generator=generator, device=probs.device, dtype=probs.dtype
    )
    drawn = torch.searchsorted(cumulative, uniform * cumulative[..., -1:], right=True)
    return drawn.clamp_max(probs.shape[-1] - 1).squeeze(-1)


def maskgit_fill(
    logits_for: Callable[[torch.Tensor], torch.Tensor],
    batch: int,
    num_tokens: int,
    mask_token: int,
    steps: int = 25,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    confident: float | None = None,
) -> torch.Tensor:
    """Fill a fully masked frame (B, num_tokens); `logits_for(tokens)` -> (B, num_tokens, vocab).

    At most `steps` rounds, fewer once every token is filled; with `confident` (a probability;
    1 changes nothing), samples more probable than that are kept whatever the schedule.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if confident is not None and not 0 < confident <= 1:
        raise ValueError(f"confident must be a probability in (0, 1], got {confident}")
    tokens = torch.full((batch, num_tokens), mask_token, dtype=torch.long, device=device)
    for step in range(steps):
        masked = tokens == mask_token
        probs = torch.softmax(logits_for(tokens).float() / temperature, dim=-1)
        sampled = sample(probs, generator)
        confidence = probs.gather(-1, sampled[..., None]).squeeze(-1)
        confidence = confidence.masked_fill(~masked, math.inf)
        tokens = torch.where(masked, sampled, tokens)
        # Re-mask the least confident new samples, leaving cos(pi/2 * (step+1)/steps) masked
        # (at least one new token kept a round), fewer where `confident` keeps more.
        still_masked = math.floor(num_tokens * math.cos(math.pi / 2 * (step + 1) / steps))
        remask = (masked.sum(dim=1) - 1).clamp(max=still_masked)
        if confident is not None:
            remask = remask.minimum((confidence <= confident).sum(dim=1))
        if int(remask.max()) > 0:
            lowest = confidence.topk(int(remask.max()), dim=1, largest=False).indices
            keep = torch.arange(lowest.shape[1], device=device) >= remask[:, None]
            tokens.scatter_(1, lowest, torch.where(keep, tokens.gather(1, lowest), mask_token))
        else:
            break  # nothing left masked
    return tokens


class Session:
    """An interactive rollout: holds the token history (and cache); `step(action)` adds a frame.

    `prompt` is (B, T0, grid_h, grid_w) token ids of the prompt frame(s); frame 0 gets the
    "no action" embedding and later prompt frames `prompt_actions` (B, T0-1), default action 0.
    The context window is `dynamics.config.context_frames` frames (history + the new frame).
    `steps`, `temperature` and `confident` are `maskgit_fill`'s.
    """

    def __init__(
        self,
        dynamics: DynamicsModel,
        prompt: torch.Tensor,
        prompt_actions: torch.Tensor | None = None,
        *,
        steps: int = 25,
        temperature: float = 1.0,
        confident: float | None = None,
        seed: int = 0,
        use_cache: bool = True,
        context_frames: int | None = None,
    ) -> None:
        cfg = dynamics.config
        self.dynamics = dynamics
        self.steps = steps
        self.temperature = temperature
        self.confident = confident
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
            next_frame = self.dynamics.next_frame(self.cache, last_frame, new_action)

            def logits_for(frame: torch.Tensor) -> torch.Tensor:
                logits = next_frame.logits(frame.view(batch, 1, *grid))
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
            self.confident,
        ).view(batch, 1, *grid)
        if self.cache is not None:
            next_frame.commit(frame)
        self.tokens = torch.cat([self.tokens, frame], dim=1)
        self.frame_actions = torch.cat([self.frame_actions, new_action], dim=1)
        return frame[:, 0]
