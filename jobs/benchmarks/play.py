"""Play speed: frames/s of the real play loop, one new frame per action, with and without the cache.

Each frame is what the play server does per key press: `Rollout.step` samples the next frame's
tokens with MaskGIT (25 rounds by default) and the tokenizer decodes it with its recent context.
With the temporal key/value cache (what play uses) a round runs the dynamics on the new frame
only; without it every round re-encodes the whole history, so its cost grows with the game.
Weights do not change the cost, so the models are freshly built from the preset. The two modes
are timed alternately, best of `--repeats`, because these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import time

import torch

from models.checkpoint import build_model
from models.maskgit import Session
from models.world import WorldModel


def play_seconds(world: WorldModel, frames: int, use_cache: bool, device: str) -> float:
    """Seconds to play `frames` actions from a fresh prompt (the prompt's encoding excluded)."""
    generator = torch.Generator().manual_seed(0)
    prompt = torch.rand(1, *world.frame_shape, generator=generator).to(device)
    actions = torch.randint(0, world.num_actions, (frames,), generator=generator).tolist()
    game = world.start(prompt, seed=0)
    if not use_cache:
        # Same history and seed, sampled by a Session that re-encodes the context every round.
        game.session = Session(
            world.dynamics,
            game.session.tokens,
            steps=world.maskgit_steps,
            temperature=world.temperature,
            use_cache=False,
        )
    started = time.perf_counter()
    for action in actions:
        game.step(action)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def decode_ms(world: WorldModel, device: str) -> float:
    """Milliseconds the tokenizer takes to decode one frame with its full context window."""
    cfg = world.dynamics.config
    tokens = torch.randint(
        0, cfg.num_codes, (1, world.decode_context, cfg.grid_height, cfg.grid_width)
    ).to(device)
    with torch.no_grad():
        world.tokenizer.decode(tokens)
        started = time.perf_counter()
        world.tokenizer.decode(tokens)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) * 1000


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench play", description=__doc__)
    parser.add_argument("--preset", default="tiny", help="tiny on CPU; coinrun wants a GPU")
    parser.add_argument("--steps", type=int, default=25, help="MaskGIT rounds per frame")
    parser.add_argument("--frames", type=int, default=8, help="actions played per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many per mode")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    world = WorldModel(
        build_model("tokenizer", args.preset).to(device),
        build_model("dynamics", args.preset).to(device),
        maskgit_steps=args.steps,
    )
    world.start(torch.rand(1, *world.frame_shape, device=device)).step(0)  # warm-up

    best = {True: float("inf"), False: float("inf")}
    for _ in range(args.repeats):
        for use_cache in (True, False):
            seconds = play_seconds(world, args.frames, use_cache, device)
            best[use_cache] = min(best[use_cache], seconds)
    where = f"{device}, {args.threads} thread(s)" if device == "cpu" else device
    print(
        f"Play, {args.preset} preset, {args.steps} MaskGIT steps a frame, "
        f"{args.frames} frames a game, {where}"
    )
    print(f"{'mode':>10} {'frames/s':>9} {'ms/frame':>9}")
    for use_cache, label in ((True, "cached"), (False, "uncached")):
        fps = args.frames / best[use_cache]
        print(f"{label:>10} {fps:>9.2f} {1000 / fps:>9.0f}")
    print(f"speed-up from the cache: {best[False] / best[True]:.1f}x")
    print(f"of which tokenizer decode: {decode_ms(world, device):.0f} ms/frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
