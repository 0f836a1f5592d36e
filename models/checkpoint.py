"""A trained model on disk: its weights plus which stage, preset and model config built it.

Two layouts, one loader (`load_trained`):
- a file (`model.pt`): a plain state_dict with `stage`, `preset`, `config` and `step`, for
  models that fit one process (what tests and small runs write with `save_trained`);
- a folder: `model.json` (the same fields) beside a `torch.distributed.checkpoint` of the
  weights, written shard by shard by the training workers (jobs/training/checkpoint.py). It is
  read into a model built on the meta device and materialised on the target device, one tensor
  at a time, so no process ever holds a second copy of the weights.

Every checkpoint carries the resolved model config it was trained with; loading compares it
with the preset's current config and refuses a mismatch, naming the field (a checkpoint of an
older `tiny` with another patch size must not load into the new shape, or load silently).
Plain tensors only (`weights_only=True`): no pickled code is ever run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.configs import get_preset
from models.dynamics import DynamicsModel
from models.lam import LatentActionModel
from models.st_transformer import STBlock
from models.tokenizer import VideoTokenizer

MODEL_INFO = "model.json"  # beside the sharded weights of an exported model
BUILDERS = {"tokenizer": VideoTokenizer, "lam": LatentActionModel, "dynamics": DynamicsModel}


class CheckpointMismatch(ValueError):
    """A checkpoint that does not fit what it is loaded into; the message names the field."""


def stage_config(stage: str, preset: str) -> Any:
    """The model config of `stage` in `preset` (a TokenizerConfig, LatentActionConfig or
    DynamicsConfig)."""
    if stage not in BUILDERS:
        raise ValueError(f"stage must be one of {sorted(BUILDERS)}, got {stage!r}")
    return getattr(get_preset(preset), stage)


def build_model(stage: str, preset: str, device: str | torch.device | None = None) -> nn.Module:
    """The `stage` model of `preset`; on `device="meta"` no parameter memory is allocated
    (then `init_weights` after `to_empty`, or after sharding, as torchtitan does)."""
    config = stage_config(stage, preset)
    if device is None:
        return BUILDERS[stage](config)
    with torch.device(device):
        return BUILDERS[stage](config)


@torch.no_grad()
def init_weights(model: nn.Module, stage: str, preset: str) -> None:
    """Initialise a model that was built on the meta device and materialised (`to_empty`,
    possibly sharded by FSDP2) as its constructor would have.

    The ST blocks, nearly all the weights at paper size, hold only Linear and LayerNorm layers:
    `reset_parameters` gives them the constructor's initialisation in place, on each rank's
    shard. Everything else (embeddings, rotary tables, position embeddings, codebooks, output
    layers with their own init) is small even at paper size: it is built on the CPU without the
    blocks and copied in, so its initialisation is the constructor's own, whatever it is."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    blocks = [m for m in model.modules() if isinstance(m, STBlock)]
    for block in blocks:
        for module in block.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    skeleton = _without_blocks(stage, preset)
    in_blocks = {f"{name}." for name, m in model.named_modules() if isinstance(m, STBlock)}
    rest = {
        name: value
        for name, value in skeleton.state_dict().items()
        if not any(name.startswith(prefix) for prefix in in_blocks)
    }
    set_model_state_dict(model, rest, options=StateDictOptions(full_state_dict=True, strict=False))
    buffers = dict(model.named_buffers())
    for name, value in skeleton.named_buffers():  # non-persistent ones are in no state_dict
        if name in buffers and not any(name.startswith(prefix) for prefix in in_blocks):
            buffers[name].copy_(value)


def _without_blocks(stage: str, preset: str) -> nn.Module:
    """The model on the CPU with its ST blocks on the meta device (they are re-initialised in
    place by `init_weights`): the constructor's own init for everything else."""
    original = STBlock.__init__

    def on_meta(self, *args, **kwargs):
        with torch.device("meta"):
            original(self, *args, **kwargs)

    STBlock.__init__ = on_meta
    try:
        return build_model(stage, preset)
    finally:
        STBlock.__init__ = original


def config_dict(stage: str, preset: str) -> dict[str, Any]:
    """The resolved model config as plain data: what every checkpoint records."""
    return dataclasses.asdict(stage_config(stage, preset))


def check_config(saved: dict[str, Any] | None, stage: str, preset: str, where: str) -> None:
    """Refuse a checkpoint whose model config differs from the preset's, naming the field."""
    if saved is None:
        raise CheckpointMismatch(
            f"{where} records no model config (written before configs were saved): it cannot "
            f"be checked against the {preset!r} preset; retrain it"
        )
    # As plain JSON data on both sides: a folder's model.json holds lists where configs have tuples.
    saved, current = (
        json.loads(json.dumps(saved)),
        json.loads(json.dumps(config_dict(stage, preset))),
    )
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            raise CheckpointMismatch(
                f"config field '{stage}.{key}' of {where} is {saved.get(key)!r}, but the "
                f"{preset!r} preset now has {current.get(key)!r}: load it with the preset it was "
                "trained with, or retrain"
            )


def save_trained(model: nn.Module, stage: str, preset: str, step: int, path: Path) -> Path:
    """One file holding the weights and the model config (for models that fit one process)."""
    saved = {"model": model.state_dict(), "stage": stage, "preset": preset, "step": step,
             "config": config_dict(stage, preset)}  # fmt: skip
    torch.save(saved, path)
    return path


def read_info(path: str | Path) -> dict[str, Any]:
    """Stage, preset, config, step (and lineage, for an exported folder) of a saved model."""
    path = Path(path)
    if path.is_dir():
        return json.loads((path / MODEL_INFO).read_text())
    saved = torch.load(path, weights_only=True, map_location="cpu")
    return {k: v for k, v in saved.items() if k != "model"}


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model saved at `path` (a model.pt file or an exported folder), in eval mode on
    `device`. Raises CheckpointMismatch if its config is not the preset's."""
    path = Path(path)
    if not path.is_dir():
        saved = torch.load(path, weights_only=True, map_location="cpu")
        check_config(saved.get("config"), saved["stage"], saved["preset"], str(path))
        model = build_model(saved["stage"], saved["preset"])
        model.load_state_dict(saved["model"])
        return model.eval().to(device)
    import torch.distributed.checkpoint as dcp

    info = read_info(path)
    check_config(info.get("config"), info["stage"], info["preset"], str(path))
    model = build_model(info["stage"], info["preset"], device="meta").to_empty(device=device)
    init_weights(model, info["stage"], info["preset"])  # buffers that no checkpoint holds
    state = {"model": model.state_dict()}
    dcp.load(state, checkpoint_id=str(path), no_dist=True)  # read into the model's own tensors
    return model.eval()


def check_frames(tokenizer: dict[str, Any], lam: dict[str, Any], names: tuple[str, str]) -> None:
    """Refuse a tokenizer and a LAM (their `read_info`, named by `names` in errors) that are not
    one of each, or that read frames of different sizes: token shards pair a clip's tokens with
    the LAM's actions on the same frames."""
    for info, stage, name in ((tokenizer, "tokenizer", names[0]), (lam, "lam", names[1])):
        if info["stage"] != stage:
            raise CheckpointMismatch(f"{name} is a {info['stage']} model, not a {stage}")

    def frames(info: dict[str, Any]) -> str:
        config = info.get("config") or dataclasses.asdict(
            stage_config(info["stage"], info["preset"])
        )
        return f"{config['frame_height']}x{config['frame_width']}x{config['channels']}"

    if frames(tokenizer) != frames(lam):
        raise CheckpointMismatch(
            f"{names[0]} reads {frames(tokenizer)} frames (HxWxC), {names[1]} {frames(lam)}: "
            "train both on the same clips"
        )


def check_pair(tokenizer: dict[str, Any], dynamics: dict[str, Any], names: tuple[str, str]) -> None:
    """Refuse a tokenizer and a dynamics model (their `read_info`) that do not fit together:
    the dynamics model must predict the tokenizer's codes on the tokenizer's grid."""
    tok, dyn = tokenizer["config"], dynamics["config"]
    grid = (
        -(-tok["frame_height"] // tok["patch_size"]),
        -(-tok["frame_width"] // tok["patch_size"]),
    )
    checks = (
        ("num_codes", tok["num_codes"], dyn["num_codes"]),
        ("grid_height", grid[0], dyn["grid_height"]),
        ("grid_width", grid[1], dyn["grid_width"]),
    )
    for field, want, got in checks:
        if want != got:
            raise CheckpointMismatch(
                f"tokenizer {names[0]} and dynamics {names[1]} do not fit together: the dynamics "
                f"model has {field}={got}, the tokenizer gives {want}"
            )
