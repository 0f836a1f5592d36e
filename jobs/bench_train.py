"""Ray Train loop vs a plain PyTorch loop: same model, same batches, measured side by side.

The plain loop is the ceiling: windows already decoded in memory, no Ray, no reporting. The
Ray Train run is the real `genie train` job (Ray Data decode, DDP wrapper, MLflow, checkpoints)
with one worker; its samples/s comes from the last log window, after warm-up. Both use one
thread per process, as a CPU worker on a shared node would.
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

from jobs.config import load_config
from jobs.train_config import TrainConfig
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


def plain_loop_samples_per_s(config: TrainConfig, warmup: int) -> float:
    """The same stage loss and optimizer over in-memory batches of the same kind of windows
    (cut by the same ClipWindows step, here without Ray)."""
    from jobs.stages import STAGES, frames_to_model
    from pipelines.training_data import ClipWindows

    stage = STAGES[config.stage]
    table = pq.read_table(config.data, columns=["clip_id", "video"]).to_pydict()
    cut = ClipWindows(config.window, config.windows_per_clip, config.seed, epoch=0)
    frames = torch.from_numpy(
        cut({k: np.array(v, dtype=object) for k, v in table.items()})["frames"]
    )
    torch.manual_seed(config.seed)
    model = stage.build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr)
    batches = frames.split(config.batch_size)
    started, timed = None, 0
    for step in range(config.steps):
        if step == warmup:
            started = time.perf_counter()
        batch = {"frames": frames_to_model(batches[step % len(batches)], torch.device("cpu"))}
        loss, _ = stage.loss(model, batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        timed += step >= warmup
    return timed * config.batch_size / (time.perf_counter() - started)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench train", description=__doc__)
    parser.add_argument("--stage", default="tokenizer", choices=["tokenizer", "lam"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--window", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from jobs.train import run as train_run

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        data = synthetic_clips(root / "clips", count=8, frames=32)
        half = args.steps // 2
        config = load_config(TrainConfig, None, [
            f"stage={args.stage}", "name=bench", f"data={data}", f"storage_path={root / 'runs'}",
            f"steps={args.steps}", f"batch_size={args.batch_size}", f"window={args.window}",
            f"log_every={half}", f"eval_every={half}", f"checkpoint_every={args.steps}",
            f"mlflow_uri=sqlite:///{root / 'mlflow.db'}", "num_workers=1",
        ])  # fmt: skip
        start = time.perf_counter()
        result = train_run(config)
        ray_wall = time.perf_counter() - start
        ray_rate = result["metrics"]["samples_per_s"]
        plain_rate = plain_loop_samples_per_s(config, warmup=half)

    print(f"\ntrain benchmark: stage={args.stage} preset=tiny batch={args.batch_size} "
          f"window={args.window} steps={args.steps} (second half timed), CPU, 1 thread")  # fmt: skip
    print(f"  plain PyTorch loop: {plain_rate:8.2f} samples/s")
    print(
        f"  Ray Train loop:     {ray_rate:8.2f} samples/s   (job wall {ray_wall:.0f} s incl. start-up)"
    )
    print(f"  ratio Ray Train / plain: {ray_rate / plain_rate:.2f}")
    return 0
