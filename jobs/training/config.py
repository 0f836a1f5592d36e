"""Config of a training run (`genie train`): one frozen dataclass, checked before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jobs.common.config import bounded, flatten, plain_name, require, to_dict

PRESETS_DIR = Path(__file__).parents[1] / "configs" / "train"
MAX_STEPS = 10_000_000  # the paper's dynamics model trains for 125k


@dataclass(frozen=True)
class OptimConfig:
    lr: float = bounded(3e-4, 1e-9, 1.0)
    weight_decay: float = bounded(0.01, 0.0, 10.0)
    warmup_steps: int = bounded(20, 0, MAX_STEPS)
    min_lr_ratio: float = bounded(0.1, 0.0, 1.0)
    grad_clip: float = bounded(1.0, 1e-6, 1e6)


# models.configs.PRESETS; the *-paper-form ones switch off the departures from the paper
PresetName = Literal["tiny", "small", "coinrun", "paper", "tiny-paper-form", "small-paper-form"]


@dataclass(frozen=True)
class TrainConfig:
    stage: Literal["tokenizer", "lam", "dynamics"] = "tokenizer"
    model: PresetName = "tiny"
    name: str = ""  # run name: also the checkpoint folder and the MLflow run name
    data: str = ""  # curated clips (tokenizer, lam) or token shards (dynamics)
    storage_path: str = "/tmp/genie-runs"  # checkpoints; an object-store URI on a cluster
    steps: int = bounded(200, 1, MAX_STEPS)
    batch_size: int = bounded(8, 1, 1024)  # per worker
    window: int = bounded(16, 2, 1024)  # frames a sample sees; a transition needs two
    windows_per_clip: int = bounded(4, 1, 1024)
    # Windows each worker mixes before batching. A clip's windows arrive together, so without
    # it a batch holds one clip's windows, which trains far worse.
    shuffle_buffer: int = bounded(256, 0, 4096)  # 0: no shuffle
    # Augmenting the training windows of the tokenizer and the LAM (a window's frames together;
    # the held-out windows never; both off is the paper's form). flip: mirror left-right with
    # probability 1/2. permute_colors: put the RGB channels in one of their 6 orders, drawn
    # uniformly, so a corpus of a few palettes also teaches their channel-swapped variants.
    flip: bool = False
    permute_colors: bool = False
    seed: int = bounded(0, 0, 2**31 - 1)  # rank r seeds with seed + r: all within NumPy's 2**32
    num_workers: int = bounded(1, 1, 4096)
    use_gpu: bool = False
    # PACK fills one node before the next (GPU workers sharing NVLink); SPREAD puts workers on
    # different nodes, e.g. CPU workers that would otherwise crowd one node.
    placement: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    precision: Literal["fp32", "bf16"] = "bf16"  # bf16 autocast applies on GPU only
    strategy: Literal["ddp", "fsdp"] = "ddp"
    compile: bool = False
    max_failures: int = bounded(2, 0, 100)
    log_every: int = bounded(10, 1, MAX_STEPS)
    eval_every: int = bounded(50, 1, MAX_STEPS)
    checkpoint_every: int = bounded(50, 1, MAX_STEPS)
    mlflow_uri: str = ""  # default: $MLFLOW_TRACKING_URI
    tokenizer_run: str = ""  # upstream MLflow run ids, for lineage
    lam_run: str = ""
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self):
        require(bool(self.name), "name", "be set (e.g. name=tokenizer-tiny)", self.name)
        plain_name("name", self.name)  # a folder under storage_path: never a way out of it
        require(bool(self.data), "data", "point at curated clips or token shards", self.data)
        for name in ("flip", "permute_colors"):
            require(
                not (getattr(self, name) and self.stage == "dynamics"), name,
                "be false for stage dynamics (it trains on tokens, not frames)", getattr(self, name),
            )  # fmt: skip
        require(
            self.eval_every % self.log_every == 0, "eval_every", f"be a multiple of log_every={self.log_every}",
            self.eval_every,
        )  # fmt: skip
        require(
            self.checkpoint_every % self.log_every == 0, "checkpoint_every",
            f"be a multiple of log_every={self.log_every}", self.checkpoint_every,
        )  # fmt: skip

    def flat_params(self) -> dict[str, Any]:
        return flatten(to_dict(self))
