"""A trained tokenizer and dynamics model as a world you can play: frames in, frames out.

The tokenizer turns the prompt frame into tokens; each action then samples the next frame's
tokens with MaskGIT (a `maskgit.Session`, which keeps the token history and the temporal
key/value cache), and the tokenizer decodes them back to pixels. Evaluation, `genie rollout`
and the play server all go through this one class. Everything runs under
`torch.inference_mode`: nothing here is ever trained.
"""

from __future__ import annotations

import torch

from models.dynamics import DynamicsModel
from models.maskgit import Session
from models.tokenizer import VideoTokenizer


class Rollout:
    """One running game: `step(action)` returns the next frames (B, C, H, W) in [0, 1]."""

    @torch.inference_mode()
    def __init__(
        self, world: WorldModel, prompt: torch.Tensor, seed: int, keep_video: bool = True
    ) -> None:
        self.world = world
        tokens = world.tokenizer.encode(prompt[:, None])  # (B, 1, grid_h, grid_w)
        self.session = Session(
            world.dynamics,
            tokens,
            steps=world.maskgit_steps,
            temperature=world.temperature,
            confident=world.confident,
            seed=seed,
        )
        # Without keep_video the caller keeps the frames it needs (the play server: uint8).
        self.frames = [prompt] if keep_video else None

    @torch.inference_mode()
    def step(self, action: int | torch.Tensor) -> torch.Tensor:
        self.session.step(action)
        # The tokenizer decodes with temporal context, as it was trained: the recent window.
        recent = self.session.tokens[:, -self.world.decode_context :]
        frame = self.world.tokenizer.decode(recent)[:, -1]
        if self.frames is not None:
            self.frames.append(frame)
        return frame

    def video(self) -> torch.Tensor:
        """Every frame so far, prompt first: (B, T, C, H, W)."""
        if self.frames is None:
            raise RuntimeError("this rollout was started with keep_video=False")
        return torch.stack(self.frames, dim=1)


class WorldModel:
    def __init__(
        self,
        tokenizer: VideoTokenizer,
        dynamics: DynamicsModel,
        *,
        maskgit_steps: int = 25,
        temperature: float = 1.0,
        confident: float | None = None,
        decode_context: int = 4,
    ) -> None:
        """`maskgit_steps`, `temperature`, `confident`: MaskGIT's sampling (models.maskgit);
        `decode_context`: frames the tokenizer decodes each new frame with."""
        if tokenizer.config.num_codes != dynamics.config.num_codes:
            raise ValueError(
                f"tokenizer has {tokenizer.config.num_codes} codes but dynamics expects "
                f"{dynamics.config.num_codes}: they come from different presets"
            )
        self.tokenizer, self.dynamics = tokenizer.eval(), dynamics.eval()
        self.maskgit_steps, self.temperature = maskgit_steps, temperature
        self.confident, self.decode_context = confident, decode_context

    @property
    def num_actions(self) -> int:
        return self.dynamics.config.num_actions

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the frames the world takes and makes."""
        cfg = self.tokenizer.config
        return cfg.channels, cfg.frame_height, cfg.frame_width

    def start(self, prompt: torch.Tensor, seed: int = 0, keep_video: bool = True) -> Rollout:
        """Begin from prompt frames (B, C, H, W) in [0, 1]; `keep_video=False` keeps no frames
        (`Rollout.video` then refuses)."""
        if tuple(prompt.shape[1:]) != self.frame_shape:
            raise ValueError(
                f"prompt must be (B, {', '.join(map(str, self.frame_shape))}), "
                f"got {tuple(prompt.shape)}"
            )
        return Rollout(self, prompt, seed, keep_video)

    @torch.inference_mode()
    def rollout(self, prompt: torch.Tensor, actions: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Prompt (B, C, H, W) and actions (B, N) -> video (B, N + 1, C, H, W), prompt first."""
        game = self.start(prompt, seed)
        for t in range(actions.shape[1]):
            game.step(actions[:, t])
        return game.video()
