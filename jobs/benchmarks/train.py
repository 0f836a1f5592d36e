"""Ray Train loop vs a plain PyTorch loop: same model, same batches, measured side by side.

The plain loop is the ceiling: windows already decoded in memory, no Ray, no reporting. The
Ray Train run is the real `genie train` job (Ray Data decode, DDP wrapper, MLflow, checkpoints)
with one worker; its samples/s comes from the last log window, after warm-up. On the CPU both
use one thread per process, as a CPU worker on a shared node would.

On a GPU (`--device cuda`, the default when one is present; bf16 autocast) it also prints
tokens/s and model FLOPs utilization: the FLOPs of one training step are counted by
`torch.utils.flop_counter` (forward and backward, as the model really runs) and divided by the
step time and the GPU's dense bf16 peak (`--peak-tflops`, known for H100/H200/A100).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from jobs.common.config import load_config
from jobs.training.config import TrainConfig
from pipelines.synth.corpus import SourceSpec, gameplay
from pipelines.video import encode_mp4


def synthetic_clips(folder: Path, count: int, frames: int) -> Path:
    """Curated-format clips (160x90, 10 FPS mp4 bytes) of the built-in game."""
    rows = []
    for i in range(count):
        spec = SourceSpec(f"bench{i}", "gameplay", frames * 3 / 30, seed=1000 + i, expected="keep")
        source = list(gameplay(spec)[0])[::3]  # 30 -> 10 FPS
        clip = np.stack([cv2.resize(f, (160, 90), interpolation=cv2.INTER_AREA) for f in source])
        rows.append({"clip_id": f"bench{i:03d}", "video": encode_mp4(clip, 10), "keep": True})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-00000.parquet")
    return folder


def synthetic_tokens(folder: Path, count: int, frames: int, preset: str) -> Path:
    """Token shards (what `genie tokenize` writes) of random codes and actions: the dynamics
    model's cost does not depend on which tokens it sees."""
    from models.configs import get_preset
    from pipelines.tokenize import TOKEN_SCHEMA

    dyn = get_preset(preset).dynamics
    rng = np.random.default_rng(0)
    shape = (frames, dyn.grid_height, dyn.grid_width)
    rows = [
        {
            "clip_id": f"bench{i:03d}",
            "shape": list(shape),
            "tokens": rng.integers(0, dyn.num_codes, shape, dtype=np.int16).ravel(),
            "actions": rng.integers(0, dyn.num_actions, frames - 1, dtype=np.int8),
            "tokenizer_run_id": "",
            "lam_run_id": "",
        }
        for i in range(count)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=TOKEN_SCHEMA), folder / "part-00000.parquet")
    return folder


# Dense bf16 peak TFLOP/s by GPU name (vendor data sheets, SXM parts).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def plain_loop(config: TrainConfig, warmup: int, device: torch.device) -> tuple[float, float]:
    """The same stage loss and optimizer over in-memory batches of the same kind of windows
    (cut by the same ClipWindows or TokenWindows step, here without Ray):
    (samples/s, FLOPs a step)."""
    from torch.utils.flop_counter import FlopCounterMode

    from jobs.training.loop import autocast
    from jobs.training.stages import STAGES
    from pipelines.training_data import ClipWindows, TokenWindows

    stage = STAGES[config.stage]
    table = pq.read_table(config.data).to_pydict()
    cut = (TokenWindows if config.stage == "dynamics" else ClipWindows)(
        config.window, config.windows_per_clip, config.seed, passes=1
    )
    windows = cut({k: np.array(v, dtype=object) for k, v in table.items()})
    splits = [torch.from_numpy(v).split(config.batch_size) for v in windows.values()]
    batches = list(zip(*splits, strict=True))
    torch.manual_seed(config.seed)
    model = stage.build_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr)

    def train_step(step: int) -> None:
        batch = stage.inputs(dict(zip(windows, batches[step % len(batches)], strict=True)), device)
        with autocast(config, device):
            loss, _ = stage.loss(model, batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()

    counter = FlopCounterMode(display=False)
    with counter:
        train_step(0)
    started, timed = None, 0
    for step in range(1, config.steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
        train_step(step)
        timed += step >= warmup
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return timed * config.batch_size / (time.perf_counter() - started), counter.get_total_flops()


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.bench train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stage", default="tokenizer", choices=["tokenizer", "lam", "dynamics"])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "coinrun", "paper"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu",
        help="cuda (bf16 autocast; default when a GPU is present) or cpu (fp32, 1 thread)",
    )  # fmt: skip
    parser.add_argument(
        "--peak-tflops", type=float, default=None,
        help="the device's dense bf16 peak for MFU (default: known for H100, H200, A100)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)

    from jobs.train import run as train_run
    from jobs.training.stages import STAGES

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        data = (
            synthetic_tokens(root / "tokens", count=8, frames=32, preset=args.preset)
            if args.stage == "dynamics"
            else synthetic_clips(root / "clips", count=8, frames=32)
        )
        half = args.steps // 2
        config = load_config(TrainConfig, None, [
            f"stage={args.stage}", "name=bench", f"data={data}", f"storage_path={root / 'runs'}",
            f"steps={args.steps}", f"batch_size={args.batch_size}", f"window={args.window}",
            f"log_every={half}", f"eval_every={half}", f"checkpoint_every={args.steps}",
            f"mlflow_uri=sqlite:///{root / 'mlflow.db'}", "num_workers=1",
            f"model={args.preset}", f"use_gpu={device.type == 'cuda'}",
            f"precision={'bf16' if device.type == 'cuda' else 'fp32'}",
        ])  # fmt: skip
        start = time.perf_counter()
        result = train_run(config)
        ray_wall = time.perf_counter() - start
        ray_rate = result["metrics"]["samples_per_s"]
        plain_rate, step_flops = plain_loop(config, warmup=half, device=device)

    on = (
        f"GPU {torch.cuda.get_device_name(device)}, bf16"
        if device.type == "cuda"
        else "CPU, 1 thread"
    )
    print(f"\ntrain benchmark: stage={args.stage} preset={args.preset} batch={args.batch_size} "
          f"window={args.window} steps={args.steps} (second half timed), {on}")  # fmt: skip
    tokens = STAGES[args.stage].tokens_per_sample(config)
    peak = args.peak_tflops or peak_tflops(device)
    for name, rate in (("plain PyTorch loop", plain_rate), ("Ray Train loop", ray_rate)):
        line = f"  {name:19s} {rate:8.2f} samples/s  {rate * tokens:10.0f} tokens/s"
        achieved = rate / config.batch_size * step_flops / 1e12  # TFLOP/s
        line += f"  {achieved:.3g} TFLOP/s"
        if peak:
            line += f"  MFU {achieved / peak:.1%} of {peak:.0f}"
        print(line)
    print(f"  (Ray Train job wall {ray_wall:.0f} s incl. start-up; "
          f"{step_flops / config.batch_size / 1e9:.1f} GFLOP a sample, counted)")  # fmt: skip
    print(f"  ratio Ray Train / plain: {ray_rate / plain_rate:.2f}")
    return 0
