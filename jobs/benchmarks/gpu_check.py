"""The GPU check (`make gpu-check`): what one GPU does with the `coinrun` preset, in one command.

Measured on one device, bf16 autocast, every figure from a real run:
- each training stage (tokenizer, LAM, dynamics) in a plain loop: samples/s, tokens/s, TFLOP/s
  and MFU (the FLOPs of a real step counted by `torch.utils.flop_counter`, against the GPU's
  dense bf16 peak), peak memory;
- the real `genie train` job (Ray Train, use_gpu=True) vs that plain loop for the dynamics stage;
- play frames/s with the temporal KV cache (what `genie play` runs);
- one ST block of the `paper` dynamics model (the 10B one) sharded with FSDP2 over a one-device
  mesh: its parameter, gradient and AdamW memory, and the peak of a training step of it, so
  the per-GPU memory of the whole model over N GPUs can be worked out from a measurement.
It prints one table and writes the figures as JSON. `--dry` runs the same code with the `tiny`
preset, a few steps, on the CPU: CI runs it so the check cannot rot.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from jobs.benchmarks.train import measure, peak_tflops
from jobs.common.parsers import command_parser

EPILOG = """\
examples:
  make gpu-check                                        # on a GPU node, under 8 minutes
  python -m jobs.benchmarks.gpu_check --out gpu-check.json
  python -m jobs.benchmarks.gpu_check --dry             # tiny, CPU, seconds: what CI runs
"""


def play_fps(preset: str, device: torch.device, frames: int, steps: int) -> float:
    from jobs.benchmarks.play import play_seconds
    from models.checkpoint import build_model
    from models.world import WorldModel

    torch.manual_seed(0)
    world = WorldModel(build_model("tokenizer", preset).to(device),
                       build_model("dynamics", preset).to(device), maskgit_steps=steps)  # fmt: skip
    prompt = torch.rand(1, *world.frame_shape, device=device)
    world.start(prompt).step(0)  # warm-up
    actions = torch.randint(0, world.num_actions, (frames,)).tolist()
    with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        return frames / play_seconds(world, prompt, actions, cached=True)[0]


def paper_block_memory(preset: str, device: torch.device, window: int) -> dict:
    """One ST block of `preset`'s dynamics model under FSDP2 on a one-device mesh: the bytes of
    its parameters, gradients and AdamW moments, and the peak of a bf16 training step of it
    on (1, window, tokens, dim)."""
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    from models.configs import get_preset
    from models.st_transformer import STBlock, rotary_tables

    own_group = not dist.is_initialized()
    if own_group:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29511")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        cfg = get_preset(preset).dynamics
        with torch.device("meta"):
            block = STBlock(cfg.dim, cfg.num_heads, cfg.ffn_mult, "st")
        block = fully_shard(block, mesh=dist.device_mesh.init_device_mesh(device.type, (1,)))
        block.to_empty(device=device)
        for module in block.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        optimizer = torch.optim.AdamW(block.parameters(), lr=1e-4)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        tokens = cfg.grid_height * cfg.grid_width
        x = torch.randn(1, window, tokens, cfg.dim, device=device, requires_grad=True)
        rotary = rotary_tables(torch.arange(window, device=device), cfg.dim // cfg.num_heads)
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            out, _ = block(x, rotary, None, None)
        out.float().square().mean().backward()
        optimizer.step()
        params = sum(p.numel() for p in block.parameters())
        result = {
            "dim": cfg.dim, "tokens_per_frame": tokens, "window": window,
            "parameters": params, "layers": cfg.num_layers,
            "weights_grads_adam_bytes": params * 4 * 4,  # fp32 weights, grads, two moments
        }  # fmt: skip
        if device.type == "cuda":
            result["step_peak_bytes"] = torch.cuda.max_memory_allocated(device)
        return result
    finally:
        if own_group:
            dist.destroy_process_group()


def table(results: dict) -> str:
    gib = 2**30
    lines = [f"GPU check on {results['device']} ({results['preset']} preset, "
             f"{'bf16' if results['device'] != 'cpu' else 'fp32'})", ""]  # fmt: skip
    lines.append(f"{'stage':10} {'samples/s':>10} {'tokens/s':>11} {'TFLOP/s':>8} {'MFU':>6} "
                 f"{'peak GiB':>9}")  # fmt: skip
    for stage in results["stages"]:
        mfu = f"{stage['plain_mfu']:.1%}" if stage.get("plain_mfu") is not None else "n/a"
        peak = stage.get("peak_memory_bytes")
        lines.append(
            f"{stage['stage']:10} {stage['plain_samples_per_s']:10.2f} "
            f"{stage['plain_tokens_per_s']:11.0f} {stage['plain_tflops']:8.3g} {mfu:>6} "
            f"{peak / gib if peak else float('nan'):9.2f}"
        )
    ray = results["ray_train"]
    lines += ["", f"Ray Train vs plain loop ({ray['stage']}, use_gpu={results['device'] != 'cpu'}): "
              f"{ray['ray_samples_per_s']:.2f} vs {ray['plain_samples_per_s']:.2f} samples/s, "
              f"ratio {ray['ray_vs_plain']:.2f}"]  # fmt: skip
    lines.append(f"play with the KV cache: {results['play_frames_per_s']:.2f} frames/s")
    block = results["block"]
    lines.append(
        f"one ST block of the {results['block_preset']} dynamics ({block['parameters'] / 1e6:.0f}M "
        f"params, FSDP2 on one device): weights+grads+AdamW {block['weights_grads_adam_bytes'] / gib:.2f} GiB"
        + (
            f", step peak {block['step_peak_bytes'] / gib:.2f} GiB"
            if "step_peak_bytes" in block
            else ""
        )
        + f"; x{block['layers']} layers"
    )
    lines.append(f"total {results['seconds']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m jobs.benchmarks.gpu_check", __doc__, EPILOG)
    parser.add_argument("--dry", action="store_true", help="tiny preset, a few steps, CPU")
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"), help="JSON figures")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.dry:
        device, preset, block_preset, steps, batch, window = (
            torch.device("cpu"), "tiny", "tiny", 4, 1, 4)  # fmt: skip
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            parser.error("no GPU here: run on a GPU node, or pass --dry for the CPU dry run")
        device, preset, block_preset, steps, batch, window = (
            torch.device("cuda"), "coinrun", "paper", 20, 8, 16)  # fmt: skip
    stages = [measure(stage, preset, steps, batch, window, device, ray_train=False)
              for stage in ("tokenizer", "lam", "dynamics")]  # fmt: skip
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "peak_bf16_tflops": peak_tflops(device),
        "preset": preset,
        "stages": stages,
        "ray_train": measure("dynamics", preset, steps, batch, window, device, ray_train=True),
        "play_frames_per_s": play_fps(
            preset, device, frames=4 if args.dry else 16, steps=2 if args.dry else 25
        ),
        "block_preset": block_preset,
        "block": paper_block_memory(block_preset, device, window),
    }
    results["seconds"] = time.perf_counter() - started
    print(table(results))
    args.out.write_text(json.dumps(results, indent=2))
    print(f"figures: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
