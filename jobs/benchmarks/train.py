"""Ray Train loop vs a plain PyTorch loop: same model, same batches, measured side by side.
With `--idle-pause`: the real `genie train` job with `--workers` workers (default 2), Ray Data's
idle pause (pipelines/executor_idle.py) off, then on, on the same data.

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

import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from jobs.common.config import load_config
from jobs.common.parsers import command_parser
from jobs.training.config import TrainConfig
from models.configs import PRESETS
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


def plain_loop(
    config: TrainConfig, warmup: int, device: torch.device
) -> tuple[float, float, int | None]:
    """The same stage loss and optimizer over in-memory batches of the same kind of windows
    (cut by the same ClipWindows or TokenWindows step, here without Ray):
    (samples/s, FLOPs a step, peak device memory in bytes on a GPU, else None)."""
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
        raw = dict(zip(windows, batches[step % len(batches)], strict=True))
        batch = stage.inputs(raw, device, config)
        with autocast(config, device):
            loss, _ = stage.loss(model, batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
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
    rate = timed * config.batch_size / (time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return rate, counter.get_total_flops(), peak


def bench_data(root: Path, stage: str, window: int, preset: str) -> Path:
    """8 synthetic training inputs under `root`: token shards for dynamics, else video clips."""
    frames = max(32, window)
    if stage == "dynamics":
        return synthetic_tokens(root / "tokens", count=8, frames=frames, preset=preset)
    return synthetic_clips(root / "clips", count=8, frames=frames)


def bench_config(
    stage: str,
    preset: str,
    data: str | Path,
    root: Path,
    steps: int,
    batch_size: int,
    window: int,
    name: str,
    workers: int,
    device: torch.device,
) -> TrainConfig:
    """The `genie train` config a benchmark runs: logs and evaluates at half of `steps` (the
    second half is what is timed), tracks into a SQLite MLflow store under `root`."""
    half = max(1, steps // 2)
    return load_config(TrainConfig, None, [
        f"stage={stage}", f"name={name}", f"data={data}", f"storage_path={root / 'runs'}",
        f"steps={steps}", f"batch_size={batch_size}", f"window={window}",
        f"log_every={half}", f"eval_every={half}", f"checkpoint_every={half * 2}",
        f"mlflow_uri=sqlite:///{root / 'mlflow.db'}", f"num_workers={workers}",
        f"model={preset}", f"use_gpu={device.type == 'cuda'}",
        f"precision={'bf16' if device.type == 'cuda' else 'fp32'}",
    ])  # fmt: skip


def measure(
    stage: str,
    preset: str,
    steps: int,
    batch_size: int,
    window: int,
    device: torch.device,
    ray_train: bool = True,
) -> dict:
    """Samples/s, tokens/s, TFLOP/s and MFU of the plain loop and (with `ray_train`) of the real
    `genie train` job on the same synthetic data, the second half of `steps` timed."""
    from jobs.train import run as train_run
    from jobs.training.stages import STAGES

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        data = bench_data(root, stage, window, preset)
        config = bench_config(
            stage, preset, data, root, steps, batch_size, window, "bench", 1, device
        )
        result = {"stage": stage, "preset": preset, "batch_size": batch_size, "window": window}
        if ray_train:
            start = time.perf_counter()
            result["ray_samples_per_s"] = train_run(config)["metrics"]["samples_per_s"]
            result["ray_wall_s"] = time.perf_counter() - start
        result["plain_samples_per_s"], step_flops, result["peak_memory_bytes"] = plain_loop(
            config, warmup=config.log_every, device=device
        )
    tokens = STAGES[stage].tokens_per_sample(config)
    peak = peak_tflops(device)
    result["flops_per_sample"] = step_flops / batch_size
    for loop in ("plain", "ray"):
        if f"{loop}_samples_per_s" in result:
            rate = result[f"{loop}_samples_per_s"]
            result[f"{loop}_tokens_per_s"] = rate * tokens
            result[f"{loop}_tflops"] = rate * result["flops_per_sample"] / 1e12
            result[f"{loop}_mfu"] = result[f"{loop}_tflops"] / peak if peak else None
    if ray_train:
        result["ray_vs_plain"] = result["ray_samples_per_s"] / result["plain_samples_per_s"]
    return result


def idle_pause_comparison(
    stage: str,
    preset: str,
    steps: int,
    batch_size: int,
    window: int,
    workers: int,
    clips: str | None,
) -> dict[str, float]:
    """Samples/s (the last log window, the second half of `steps`) and wall seconds of the real
    `genie train` job on CPU, with Ray Data's idle pause off and then on, Ray started before
    either, on curated `clips` (default: synthetic clips, or token shards for dynamics). The
    pause changes something only where training holds the pipeline back: where the windows
    `steps` need do not fit in Ray Data's budget (the CoinRun demo's 2,000 tokenizer steps),
    not in a short run on a few clips."""
    import ray

    from jobs.train import run as train_run
    from pipelines.executor_idle import PAUSE_ENV

    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        data = clips or bench_data(root, stage, window, preset)
        for label, pause in (("off", "0"), ("on", None)):
            config = bench_config(stage, preset, data, root, steps, batch_size, window,
                                  f"bench-{label}", workers, torch.device("cpu"))  # fmt: skip
            previous = os.environ.pop(PAUSE_ENV, None)
            if pause is not None:
                os.environ[PAUSE_ENV] = pause
            try:
                start = time.perf_counter()
                result[f"{label}_samples_per_s"] = train_run(config)["metrics"]["samples_per_s"]
                result[f"{label}_wall_s"] = time.perf_counter() - start
            finally:
                os.environ.pop(PAUSE_ENV, None)
                if previous is not None:
                    os.environ[PAUSE_ENV] = previous
    result["on_vs_off"] = result["on_samples_per_s"] / result["off_samples_per_s"]
    return result


def run(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m jobs.bench train", __doc__, "")
    parser.add_argument("--stage", default="tokenizer", choices=["tokenizer", "lam", "dynamics"])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
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
    parser.add_argument(
        "--idle-pause", action="store_true",
        help="instead: the genie train job with Ray Data's idle pause off, then on (CPU); it "
        "matters only where the run's windows outgrow Ray Data's budget, e.g. --clips of the "
        "CoinRun demo with --steps 2000 --preset small --batch-size 4",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=2, help="training workers with --idle-pause (default 2)"
    )
    parser.add_argument(
        "--clips", default=None,
        help="with --idle-pause: curated clips to train on (default: 8 synthetic clips)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.idle_pause:
        pause = idle_pause_comparison(
            args.stage,
            args.preset,
            args.steps,
            args.batch_size,
            args.window,
            args.workers,
            args.clips,
        )
        print(f"\ntrain benchmark, Ray Data's idle pause: stage={args.stage} "
              f"preset={args.preset} batch={args.batch_size} window={args.window} "
              f"steps={args.steps} (second half timed), {args.workers} CPU workers")  # fmt: skip
        for label in ("off", "on"):
            print(f"  pause {label:3s} {pause[f'{label}_samples_per_s']:8.2f} samples/s  "
                  f"(job wall {pause[f'{label}_wall_s']:.0f} s incl. start-up)")  # fmt: skip
        print(f"  ratio on / off: {pause['on_vs_off']:.2f} (the pause matters only where the "
              "run holds the pipeline back: see --help)")  # fmt: skip
        return 0
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)

    result = measure(args.stage, args.preset, args.steps, args.batch_size, args.window, device)
    on = (
        f"GPU {torch.cuda.get_device_name(device)}, bf16"
        if device.type == "cuda"
        else "CPU, 1 thread"
    )
    print(f"\ntrain benchmark: stage={args.stage} preset={args.preset} batch={args.batch_size} "
          f"window={args.window} steps={args.steps} (second half timed), {on}")  # fmt: skip
    peak = args.peak_tflops or peak_tflops(device)
    for name, loop in (("plain PyTorch loop", "plain"), ("Ray Train loop", "ray")):
        rate, tflops = result[f"{loop}_samples_per_s"], result[f"{loop}_tflops"]
        line = (
            f"  {name:19s} {rate:8.2f} samples/s  {result[f'{loop}_tokens_per_s']:10.0f} tokens/s"
        )
        line += f"  {tflops:.3g} TFLOP/s"
        if peak:
            line += f"  MFU {tflops / peak:.1%} of {peak:.0f}"
        print(line)
    print(f"  (Ray Train job wall {result['ray_wall_s']:.0f} s incl. start-up; "
          f"{result['flops_per_sample'] / 1e9:.1f} GFLOP a sample, counted)")  # fmt: skip
    print(f"  ratio Ray Train / plain: {result['ray_vs_plain']:.2f}")
    return 0
