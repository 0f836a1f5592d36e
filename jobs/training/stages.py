"""What differs between the three training stages: model, data, loss, held-out evaluation.

The shared loop (jobs/training/loop.py) calls these; every model call goes through `forward`, which
synchronises gradients across workers under DDP and gathers the parameter shards under FSDP.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray.data
import torch

from jobs.common.tracking import Tracker
from jobs.training.config import TrainConfig
from models import metrics
from models.checkpoint import build_model
from models.configs import get_preset
from models.dynamics import masked_loss
from pipelines import training_data
from pipelines.images import frame_grid, save_png, to_model

HELDOUT_SAMPLES = 4


def heldout_note(stage: str, heldout: dict[str, torch.Tensor], window: int) -> str | None:
    """A log line when a stage's held-out metrics rest on fewer than HELDOUT_SAMPLES windows
    (the held-out clips hold fewer distinct windows, and none is repeated to fill the count);
    None when there are HELDOUT_SAMPLES."""
    count = len(next(iter(heldout.values())))
    if count >= HELDOUT_SAMPLES:
        return None
    return (
        f"[{stage}] held-out metrics on {count} window(s) of {window} frames, not "
        f"{HELDOUT_SAMPLES}: the held-out clips hold no more distinct windows"
    )


def mean_psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR per frame (`models.metrics.psnr`, as `genie eval` reports it), averaged."""
    return float(metrics.psnr(prediction, target).mean())


@dataclass(frozen=True)
class Stage:
    name: str
    experiment: str
    registered_model: str

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        return build_model(self.name, config.model)

    def tags(self, config: TrainConfig) -> dict[str, str]:
        tags = {"stage": self.name, "preset": config.model, "data": config.data}
        if config.tokenizer_run:
            tags["upstream.tokenizer_run"] = config.tokenizer_run
        if config.lam_run:
            tags["upstream.lam_run"] = config.lam_run
        return tags

    def log_images(self, tracker: Tracker, images: dict[str, np.ndarray], step: int) -> None:
        with tempfile.TemporaryDirectory() as directory:
            for name, image in images.items():
                path = Path(directory) / f"{name}_step{step:06d}.png"
                save_png(image, path)
                tracker.log_artifact(path, f"images/{name}")


@dataclass(frozen=True)
class FrameStage(Stage):
    """Tokenizer and LAM: trained on frame windows decoded from curated clips."""

    def dataset(self, config: TrainConfig, world: int) -> ray.data.Dataset:
        return training_data.clip_windows(
            config.data, config.window, config.windows_per_clip, config.seed,
            samples_needed=config.steps * config.batch_size * world,
        )  # fmt: skip

    def heldout_batch(self, config: TrainConfig, device: torch.device) -> dict[str, torch.Tensor]:
        windows = training_data.heldout_windows(config.data, config.window, HELDOUT_SAMPLES)
        return {"frames": to_model(np.stack([w["frames"] for w in windows]), device)}

    def inputs(
        self, batch: dict[str, torch.Tensor], device: torch.device, config: TrainConfig
    ) -> dict[str, torch.Tensor]:
        """A training batch of windows (B, T, H, W, C) uint8 -> model frames (B, T, C, H, W) in
        [0, 1] on `device`, each window augmented as `config` asks (`flip`, `permute_colors`).
        The draws come from the torch RNG of `device`, which checkpoints restore, so a resumed
        run augments as the killed one did. Held-out windows never pass through here."""
        frames = to_model(batch["frames"], device)
        if config.flip:
            mirrored = torch.rand(len(frames), device=device) < 0.5
            frames = torch.where(mirrored[:, None, None, None, None], frames.flip(-1), frames)
        if config.permute_colors:
            order = torch.rand(len(frames), 3, device=device).argsort(1)  # uniform over the 6
            frames = frames.gather(2, order[:, None, :, None, None].expand_as(frames))
        return {"frames": frames}


@dataclass(frozen=True)
class TokenizerStage(FrameStage):
    def tokens_per_sample(self, config: TrainConfig) -> int:
        tok = get_preset(config.model).tokenizer
        return config.window * tok.grid_height * tok.grid_width

    def loss(self, model, inputs, step):
        out = model(inputs["frames"])
        terms = {
            "reconstruction_loss": out.reconstruction_loss.item(),
            "codebook_perplexity": float(out.perplexity),
            "codebook_usage": float(out.usage),
        }
        return out.loss, terms

    @torch.no_grad()
    def evaluate(self, model, heldout, config):
        model.eval()
        frames = heldout["frames"]
        reconstruction = model(frames).reconstruction.clamp(0, 1)  # forward only: see unwrap
        grid = frame_grid(frames[:, :4], reconstruction[:, :4])
        return {"heldout_psnr": mean_psnr(reconstruction, frames)}, {"reconstruction": grid}


@dataclass(frozen=True)
class LatentActionStage(FrameStage):
    def tokens_per_sample(self, config: TrainConfig) -> int:
        lam = get_preset(config.model).lam
        return config.window * lam.grid_height * lam.grid_width

    def loss(self, model, inputs, step):
        out = model(inputs["frames"])
        terms = {
            "reconstruction_loss": out.reconstruction_loss.item(),
            "action_perplexity": float(out.perplexity),
            "action_usage": float(out.usage),
        }
        return out.loss, terms

    @torch.no_grad()
    def evaluate(self, model, heldout, config):
        model.eval()
        frames = heldout["frames"]
        out = model(frames)
        copy_last = mean_psnr(
            frames[:, :-1], frames[:, 1:]
        )  # the baseline: predict "nothing moves"
        metrics = {
            "heldout_next_frame_psnr": mean_psnr(out.prediction, frames[:, 1:]),
            "heldout_copy_frame_psnr": copy_last,
            "heldout_actions_used": float(out.actions.unique().numel()),
        }
        grid = frame_grid(frames[:, 1:5], out.prediction[:, :4])
        return metrics, {"next_frame_prediction": grid}


@dataclass(frozen=True)
class DynamicsStage(Stage):
    """Trained on token shards (tokens + latent actions) written by `genie tokenize`."""

    def tokens_per_sample(self, config: TrainConfig) -> int:
        dyn = get_preset(config.model).dynamics
        return config.window * dyn.grid_height * dyn.grid_width

    def dataset(self, config: TrainConfig, world: int) -> ray.data.Dataset:
        return training_data.token_windows(
            config.data, config.window, config.windows_per_clip, config.seed,
            samples_needed=config.steps * config.batch_size * world,
        )  # fmt: skip

    def heldout_batch(self, config: TrainConfig, device: torch.device) -> dict[str, torch.Tensor]:
        windows = training_data.heldout_windows(config.data, config.window, HELDOUT_SAMPLES)
        return {
            name: torch.from_numpy(np.stack([w[name] for w in windows])).long().to(device)
            for name in ("tokens", "actions")
        }

    def inputs(self, batch, device, config):
        return {
            "tokens": batch["tokens"].long().to(device),
            "actions": batch["actions"].long().to(device),
        }

    def loss(self, model, inputs, step):
        loss, accuracy = masked_loss(
            model, inputs["tokens"], inputs["actions"], dynamics_config(model)
        )
        return loss, {"masked_token_accuracy": accuracy.item()}

    @torch.no_grad()
    def evaluate(self, model, heldout, config):
        model.eval()
        generator = torch.Generator(device=heldout["tokens"].device).manual_seed(0)
        loss, accuracy = masked_loss(
            model, heldout["tokens"], heldout["actions"], dynamics_config(model), generator
        )
        uniform = float(np.log(dynamics_config(model).num_codes))
        return {"heldout_masked_loss": loss.item(), "heldout_masked_accuracy": accuracy.item(),
                "uniform_loss": uniform}, {}  # fmt: skip


def dynamics_config(model: torch.nn.Module) -> Any:
    """The DynamicsConfig of a dynamics model, bare or in its DDP wrapper."""
    return (model.module if hasattr(model, "module") else model).config


STAGES: dict[str, Stage] = {
    "tokenizer": TokenizerStage("tokenizer", "genie-tokenizer", "genie-tokenizer"),
    "lam": LatentActionStage("lam", "genie-lam", "genie-lam"),
    "dynamics": DynamicsStage("dynamics", "genie-dynamics", "genie-dynamics"),
}
