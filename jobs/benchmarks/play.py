"""Play speed and quality: frames/s of the real play loop at each sampling setting, side by side,
and with trained models the quality each setting keeps.

A frame is what the play server does per key press: `Rollout.step` samples the next frame's
tokens with MaskGIT and the tokenizer decodes it. A setting is MaskGIT's rounds a frame (at
most), `confident` (samples more probable than this are kept at once, and a frame ends when
none is masked; 1 = the schedule alone) and the frames the tokenizer decodes with. The first
setting is today's reference (the paper's 25 rounds; also timed without the key/value cache),
the others are compared with it. Settings are timed alternately, best of `--repeats`, because
these machines are shared and noisy; each is timed by the wall clock and by the CPU time of the
playing thread, which other processes on a busy machine do not inflate (frames/s on a free
core; with --threads > 1, the whole process's CPU time).

Without models, fresh `--preset` models are timed (weights do not change a round's cost, but an
untrained model is never confident, so `confident` saves nothing there). With --tokenizer,
--dynamics and --clips, the trained models are timed from held-out prompts; with --lam too,
each setting's quality is measured as `genie eval` does, on the same held-out windows: ΔtPSNR
at t = 4 (LAM-inferred vs random actions) and generation PSNR (inferred actions, every frame),
over --seeds sampling seeds.

With --sessions N, N sessions play at once through the real play server instead (Ray Serve and
HTTP, as `genie play` runs it, at play's default setting; connected to $RAY_ADDRESS when set,
e.g. the local platform), each as fast as its answers come, and each one's frames/s is printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jobs.common.parsers import command_parser
from jobs.serving.world import PLAY_CONFIDENT, PLAY_DECODE_CONTEXT, PLAY_MASKGIT_STEPS
from models import metrics
from models.checkpoint import build_model, load_trained, save_trained
from models.maskgit import Session
from models.world import WorldModel
from pipelines.images import to_uint8

DEFAULT_SETTINGS = "25:1:4,8:1:4,4:0.8:1,4:0.6:1,2:0.6:1"
PLAY_SETTING = f"{PLAY_MASKGIT_STEPS}:{PLAY_CONFIDENT:g}:{PLAY_DECODE_CONTEXT}"


@dataclass(frozen=True)
class Setting:
    steps: int
    confident: float
    decode_context: int

    @staticmethod
    def parse(text: str) -> Setting:
        """'8:0.9:1' -> 8 rounds at most, keep samples over 0.9 at once, decode with 1 frame."""
        parts = text.split(":")
        try:
            steps, confident, context = int(parts[0]), float(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            raise ValueError(
                f"setting {text!r} is not steps:confident:context, e.g. 8:0.9:1"
            ) from None
        if steps < 1 or not 0 < confident <= 1 or context < 1:
            raise ValueError(f"setting {text!r}: steps >= 1, confident in (0, 1], context >= 1")
        return Setting(steps, confident, context)

    def world(self, tokenizer, dynamics) -> WorldModel:
        return WorldModel(
            tokenizer,
            dynamics,
            maskgit_steps=self.steps,
            confident=self.confident,
            decode_context=self.decode_context,
        )

    def __str__(self) -> str:
        return f"{self.steps}:{self.confident:g}:{self.decode_context}"


def play_seconds(
    world: WorldModel, prompt: torch.Tensor, actions: list[int], cached: bool
) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to play `actions` from `prompt` (1, C, H, W), one frame
    each (prompt excluded)."""
    game = world.start(prompt, seed=0)
    if not cached:
        # Same history and seed, sampled by a Session that re-encodes the context every round.
        game.session = Session(
            world.dynamics,
            game.session.tokens,
            steps=world.maskgit_steps,
            temperature=world.temperature,
            confident=world.confident,
            use_cache=False,
        )
    cpu_time = time.thread_time if torch.get_num_threads() == 1 else time.process_time
    started, cpu_started = time.perf_counter(), cpu_time()
    for action in actions:
        game.step(action)
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, cpu_time() - cpu_started


def quality(world: WorldModel, truth: torch.Tensor, inferred: torch.Tensor, seed: int) -> dict:
    """ΔtPSNR at t = 4 and generation PSNR of windows `truth` (B, T, C, H, W), as genie eval."""
    generator = torch.Generator().manual_seed(seed)
    random_actions = torch.randint(0, world.num_actions, inferred.shape, generator=generator)
    with_inferred = world.rollout(truth[:, 0], inferred.to(truth.device), seed=seed)
    with_random = world.rollout(truth[:, 0], random_actions.to(truth.device), seed=seed)
    return {
        "delta_psnr_t4": metrics.delta_psnr(truth, with_inferred, with_random, t=4),
        "generation_psnr": float(metrics.psnr(with_inferred[:, 1:], truth[:, 1:]).mean()),
    }


def held_out(clips: str, frames: int, samples: int, device: str) -> torch.Tensor:
    """Held-out windows (B, T, C, H, W) of curated clips, on `device`."""
    import ray

    from pipelines.images import to_model
    from pipelines.training_data import heldout_windows

    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    windows = heldout_windows(clips, frames, samples)
    return to_model(np.stack([w["frames"] for w in windows]), device)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m jobs.bench play", __doc__, "")
    parser.add_argument("--preset", default="tiny", help="without models: tiny; coinrun on a GPU")
    parser.add_argument(
        "--settings",
        default=DEFAULT_SETTINGS,
        help="steps:confident:decode_context, comma-separated; the first is the reference "
        f"(default {DEFAULT_SETTINGS})",
    )
    parser.add_argument("--frames", type=int, default=24, help="actions played per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many per setting")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--tokenizer", help="trained tokenizer: model.pt path (with the others)")
    parser.add_argument("--dynamics", help="trained dynamics model: model.pt path")
    parser.add_argument("--lam", help="trained LAM: model.pt path (infers the held-out actions)")
    parser.add_argument("--clips", help="curated clips: the held-out windows")
    parser.add_argument("--samples", type=int, default=8, help="held-out windows (default 8)")
    parser.add_argument("--window", type=int, default=10, help="frames a window (default 10)")
    parser.add_argument("--seeds", type=int, default=2, help="sampling seeds a setting")
    parser.add_argument(
        "--sessions", type=int, default=0, help="play this many sessions at once via the server"
    )
    parser.add_argument("--cpus", type=int, default=1, help="with --sessions: replica CPUs")
    return parser


def session_rates(args, tokenizer: str, dynamics: str, prompt: np.ndarray) -> list[float]:
    """Frames/s of each of `args.sessions` sessions playing `args.frames` frames at once
    through the play server, from an RGB uint8 prompt."""
    import json
    import socket
    import threading
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import ray
    from ray import serve

    from jobs.serving.app import APP_NAME, PlayConfig, start_play_server
    from jobs.serving.sessions import PlayLimits

    if not ray.is_initialized():
        ray.init(logging_level="WARNING")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limits = PlayLimits(max_sessions=max(8, args.sessions))
    config = PlayConfig(limits=limits, record_dir="", cpus=args.cpus)
    url = start_play_server(tokenizer, dynamics, {}, port=port, config=config)

    def post(path: str, body: bytes, kind: str = "application/json") -> dict:
        request = urllib.request.Request(url + path, body, {"Content-Type": kind}, method="POST")
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.load(response)

    png = cv2.imencode(".png", cv2.cvtColor(prompt, cv2.COLOR_RGB2BGR))[1].tobytes()
    together = threading.Barrier(args.sessions)

    def play(index: int) -> float:
        session = post("sessions", png, "image/png")["session"]
        rng = np.random.default_rng(index)
        step = f"sessions/{session}/step"
        post(step, json.dumps({"action": 0}).encode())  # warm-up
        together.wait()
        started = time.perf_counter()
        for action in rng.integers(0, 8, args.frames).tolist():
            post(step, json.dumps({"action": action}).encode())
        return args.frames / (time.perf_counter() - started)

    try:
        with ThreadPoolExecutor(args.sessions) as pool:
            return list(pool.map(play, range(args.sessions)))
    finally:
        serve.delete(APP_NAME)


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = [Setting.parse(text) for text in args.settings.split(",")]
    except ValueError as error:
        parser.error(str(error))
    trained = [args.tokenizer, args.dynamics, args.clips]
    if any(trained) and not all(trained):
        parser.error("trained models need all of --tokenizer, --dynamics and --clips")
    if args.lam and not all(trained):
        parser.error("quality (--lam) needs trained models: --tokenizer, --dynamics, --clips")
    for name in ("frames", "repeats", "threads", "samples", "seeds", "cpus"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.window < 5:
        parser.error(f"--window must be >= 5 (ΔtPSNR is taken at t = 4), got {args.window}")
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)

    if all(trained):
        tokenizer, dynamics = (
            load_trained(args.tokenizer, device),
            load_trained(args.dynamics, device),
        )
        truth = held_out(args.clips, args.window, args.samples, device)
        prompt = truth[:1, 0]
        models = "trained models, a held-out prompt"
    else:
        tokenizer = build_model("tokenizer", args.preset).to(device).eval()
        dynamics = build_model("dynamics", args.preset).to(device).eval()
        prompt = torch.rand(1, *settings[0].world(tokenizer, dynamics).frame_shape, device=device)
        models = f"fresh {args.preset} models (never confident: no early stop)"
    if args.sessions > 0:
        with tempfile.TemporaryDirectory() as folder:
            if not all(trained):  # the server loads models from files
                args.tokenizer = str(save_trained(tokenizer, "tokenizer", args.preset, 0,
                                                  Path(folder) / "tokenizer.pt"))  # fmt: skip
                args.dynamics = str(save_trained(dynamics, "dynamics", args.preset, 0,
                                                 Path(folder) / "dynamics.pt"))  # fmt: skip
            rates = session_rates(args, args.tokenizer, args.dynamics, to_uint8(prompt[0].cpu()))
        print(f"{args.sessions} sessions at once through the play server ({models}; a replica "
              f"of {args.cpus} CPU(s), {args.frames} frames each, play's default setting)")  # fmt: skip
        print("frames/s of each: " + ", ".join(f"{rate:.2f}" for rate in rates))
        print(f"slowest {min(rates):.2f}, all together {sum(rates):.2f} frames/s")
        return 0
    generator = torch.Generator().manual_seed(0)
    actions = torch.randint(0, dynamics.config.num_actions, (args.frames,), generator=generator)
    worlds = [setting.world(tokenizer, dynamics) for setting in settings]
    worlds[0].start(prompt).step(0)  # warm-up

    best = [(float("inf"),) * 2] * (len(settings) + 1)  # last: the reference, no cache
    for _ in range(args.repeats):
        for index, world in enumerate([*worlds, worlds[0]]):
            seconds = play_seconds(world, prompt, actions.tolist(), cached=index < len(worlds))
            best[index] = tuple(map(min, best[index], seconds))
    where = f"{device}, {args.threads} thread(s)" if device == "cpu" else device
    print(f"Play: {models}; {args.frames} frames a game, {where}")
    print("setting = MaskGIT rounds at most : keep samples over this : frames decoded with")

    scores = {}
    if args.lam:
        with torch.inference_mode():
            inferred = load_trained(args.lam).infer_actions(truth.cpu())
        print(f"quality on {len(truth)} held-out windows of {args.window} frames, "
              f"{args.seeds} seed(s) each ...", flush=True)  # fmt: skip
        for setting, world in zip(settings, worlds, strict=True):
            runs = [quality(world, truth, inferred, seed) for seed in range(args.seeds)]
            scores[setting] = {k: [r[k] for r in runs] for k in runs[0]}

    header = f"{'setting':>15} {'frames/s':>9} {'ms/frame':>9} {'frames/CPU-s':>13} {'speed-up':>9}"
    print(header + (f" {'ΔtPSNR t4 (dB)':>16} {'gen PSNR (dB)':>15}" if scores else ""))
    rows = [(str(s), seconds) for s, seconds in zip(settings, best, strict=False)]
    rows.append((f"{settings[0]} uncached", best[-1]))
    for index, (label, (wall, cpu)) in enumerate(rows):
        fps = args.frames / wall
        line = f"{label:>15} {fps:>9.2f} {1000 / fps:>9.1f} {args.frames / cpu:>13.2f}"
        line += f" {best[0][1] / cpu:>8.2f}x"
        if scores and index < len(settings):
            for values in scores[settings[index]].values():
                line += f" {np.mean(values):>+9.2f} ± {np.std(values):.2f}"
        print(line + ("   <- genie play's default" if label == PLAY_SETTING else ""))
    print("speed-up: in CPU time, against the first setting")
    if scores:
        print(f"quality: mean ± standard deviation over {args.seeds} sampling seed(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
