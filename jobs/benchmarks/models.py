"""Benchmarks: ST vs full attention (peak memory, time per training step) and sampler frames/s.

Run `python -m jobs.benchmarks.models` (the `jobs.bench models` entry calls `run`). On CPU, peak
memory is the rise of the process's peak RSS during one step, each case measured in a fresh
spawned process; on CUDA it is `torch.cuda.max_memory_allocated` and the step runs in bf16.
Full attention cases whose attention scores alone would pass `max_full_gb` are skipped.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import torch

from models.configs import get_preset
from models.dynamics import DynamicsModel
from models.maskgit import Session
from models.st_transformer import STTransformer

GRID = (23, 40)  # 160x90 frames with patch 4


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmHWM"].split()[0]) * 1024


def _current_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]) * 1024


def training_step_cost(
    attention: str, frames: int, dim: int, layers: int, device: str
) -> tuple[float, float]:
    """(peak bytes above the start, seconds) for one forward+backward over (1, frames, 920, dim)."""
    torch.manual_seed(0)
    tokens = GRID[0] * GRID[1]
    model = STTransformer(dim, layers, max(1, dim // 32), tokens, attention=attention).to(device)
    x = torch.randn(1, frames, tokens, dim, device=device, requires_grad=True)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start_bytes = torch.cuda.memory_allocated()
    else:
        start_bytes = _current_rss_bytes()
    start = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        model(x).float().square().mean().backward()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - start_bytes
    else:
        peak = _peak_rss_bytes() - start_bytes
    return float(peak), time.perf_counter() - start


def compare_attention(frame_counts, dim: int, layers: int, device: str, max_full_gb: float) -> None:
    print(
        f"ST vs full attention, one training step, 160x90 patch 4 (920 tokens/frame), d={dim}, {layers} layer(s), {device}"
    )
    print(
        f"{'T':>4} {'ST MiB':>9} {'ST s':>8} {'full MiB':>10} {'full s':>8} {'mem full/ST':>12} {'time full/ST':>13}"
    )
    context = multiprocessing.get_context("spawn")
    for frames in frame_counts:
        row = {}
        for attention in ("st", "full"):
            heads, length = max(1, dim // 32), frames * GRID[0] * GRID[1]
            score_gb = 2 * heads * length**2 * 4 / 1e9  # scores and their gradient, fp32
            if attention == "full" and device == "cpu" and score_gb > max_full_gb:
                row[attention] = None
                continue
            if device == "cuda":
                row[attention] = training_step_cost(attention, frames, dim, layers, device)
            else:
                with context.Pool(1) as pool:
                    row[attention] = pool.apply(
                        training_step_cost, (attention, frames, dim, layers, device)
                    )
        st_mem, st_s = row["st"]
        if row["full"] is None:
            print(
                f"{frames:>4} {st_mem / 2**20:>9.1f} {st_s:>8.3f} {'skipped':>10} {'':>8} {'':>12} {'':>13}"
            )
            continue
        full_mem, full_s = row["full"]
        print(
            f"{frames:>4} {st_mem / 2**20:>9.1f} {st_s:>8.3f} {full_mem / 2**20:>10.1f} {full_s:>8.3f}"
            f" {full_mem / max(st_mem, 1):>12.1f} {full_s / st_s:>13.1f}"
        )


def sampler_speed(histories, preset: str, steps: int, device: str) -> None:
    print(f"\nSampler, {preset} dynamics, {steps} MaskGIT steps a frame, {device}")
    print(f"{'history':>8} {'cached fps':>11} {'uncached fps':>13} {'speed-up':>9}")
    torch.manual_seed(0)
    model = DynamicsModel(get_preset(preset).dynamics).to(device).eval()
    cfg = model.config
    for history in histories:
        prompt = torch.randint(
            0, cfg.num_codes, (1, history, cfg.grid_height, cfg.grid_width), device=device
        )
        rates = []
        for use_cache in (True, False):
            session = Session(
                model, prompt, steps=steps, use_cache=use_cache, context_frames=history + 1
            )
            start = time.perf_counter()
            session.step(0)
            if device == "cuda":
                torch.cuda.synchronize()
            rates.append(1.0 / (time.perf_counter() - start))
        print(f"{history:>8} {rates[0]:>11.3f} {rates[1]:>13.3f} {rates[0] / rates[1]:>9.1f}")


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.benchmarks.models", description=__doc__)
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--histories", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--max-full-gb", type=float, default=6.0)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    compare_attention(args.frames, args.dim, args.layers, device, args.max_full_gb)
    sampler_speed(args.histories, args.preset, args.steps, device)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
