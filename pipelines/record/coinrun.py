"""Record CoinRun gameplay (procgen) as raw videos in the platform's raw-video layout.

This file is a standalone script: it runs in the recorder's own virtual environment
(procgen2 needs numpy < 2, which the platform's cannot take), so it imports nothing from the
platform. `genie record coinrun` creates that environment and runs it.

Each segment i of a run is one fresh CoinRun environment played by a seeded "sticky" random
policy, written as

    DIR/coinrun-<seed>-<i:04d>.mp4              H.264 (libx264 medium, crf 18, mbtree=0, 1 thread),
                                                yuv420p, 160x90, --fps FPS
    DIR/coinrun-<seed>-<i:04d>.actions.parquet  one row per video frame
    DIR/manifest.parquet                        one row per segment (rewritten at the end)

Action log columns (row i = video frame i):
    frame           int64    i
    time_s          float64  i / fps (exact)
    action          int64    effective action held from frame i to frame i+1:
                             0 noop, 1 left, 2 right, 3 jump, 4 left+jump, 5 right+jump
    action_name     string   name of `action` (as `genie synth` writes it)
    procgen_action  int64    the raw procgen id 0..14 that was sent to the game
    reset           bool     True when the game reset after this step (death, level complete,
                             or procgen's 1000-step timeout): frames i and i+1 are a hard cut
                             and `action` does not explain the change between them.

Frame i is the game's picture BEFORE action i is applied; applying action i yields frame i+1.
(gym3: `env.get_info()[0]["rgb"]` after `env.act(a)` shows the state after a; it waits for the
asynchronous step. The 512x512 centred view is cropped to rows 112..399, a 16:9 band, and
resized to 160x90 with INTER_AREA.)

Manifest columns: uri, actions_uri (absolute paths), game ("coinrun"), seed, segment,
env_seed, fps, frames, resets.

Seeding: segment i of run --seed K uses the procgen level/RNG seed env_seed = K*100000 + i
(passed as both rand_seed and start_level; with num_levels=0 procgen ignores start_level and
draws the first and every later level from rand_seed), and the policy uses
numpy.random.default_rng([K, i]). Same arguments -> byte-identical files (encoder runs with
one thread). K must be < 21474 so env_seed fits procgen's int32.

Resumable: a segment whose .mp4 and .actions.parquet both exist is skipped; files are written
under a temporary name and renamed when complete.

Parallel: --workers processes record segments side by side (default: one per CPU this
process may use, at most 16). A segment's bytes depend only on its arguments, not on the
process that recorded it or the order segments finish in. Ctrl-C or a failed segment stops
every worker at once; the segments already finished stay, for the next run to skip.

Needs: numpy<2, opencv-python-headless, av, pyarrow, procgen2==0.10.7 (gym3).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GAME = "coinrun"
WIDTH, HEIGHT = 160, 90
CROP_ROWS = (112, 400)  # 288 rows of the 512-wide view: 16:9
N_PROCGEN_ACTIONS = 15
ACTION_NAMES = ["noop", "left", "right", "jump", "left+jump", "right+jump"]
# procgen id -> effective CoinRun action. procgen: 0 left+down, 1 left, 2 left+up, 3 down,
# 4 noop, 5 up, 6 right+down, 7 right, 8 right+up, 9..14 letter keys. In CoinRun up = jump;
# down and the letter keys do nothing.
PROCGEN_TO_EFFECTIVE = np.array([1, 1, 4, 0, 0, 3, 2, 2, 5, 0, 0, 0, 0, 0, 0], dtype=np.int64)
SEED_STRIDE = 100_000
MAX_WORKERS = 256
DEFAULT_WORKERS = min(len(os.sched_getaffinity(0)), 16)  # each holds a game and an encoder


def env_seed_for(seed: int, segment: int) -> int:
    return seed * SEED_STRIDE + segment


def make_env(env_seed: int):
    from procgen import ProcgenGym3Env  # imported late so --help works without procgen

    return ProcgenGym3Env(
        num=1,
        env_name=GAME,
        render_mode="rgb_array",
        distribution_mode="hard",
        num_levels=0,
        start_level=env_seed,
        rand_seed=env_seed,
    )


def to_frame(rgb512: np.ndarray) -> np.ndarray:
    """512x512 RGB view -> 160x90 RGB uint8 frame."""
    band = rgb512[CROP_ROWS[0] : CROP_ROWS[1]]
    return cv2.resize(band, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def sticky_policy(rng: np.random.Generator, steps: int, hold_min: int, hold_max: int) -> np.ndarray:
    """Uniform procgen id held for a uniform number of steps in [hold_min, hold_max], repeated."""
    out = np.empty(steps, dtype=np.int64)
    t = 0
    while t < steps:
        action = int(rng.integers(N_PROCGEN_ACTIONS))
        hold = int(rng.integers(hold_min, hold_max + 1))
        out[t : t + hold] = action
        t += hold
    return out


def play(env_seed: int, procgen_actions: np.ndarray):
    """Play the actions; yields (frame_i, reset_i) where frame_i is the picture before action i
    and reset_i says whether the game reset after action i."""
    env = make_env(env_seed)
    try:
        rgb = env.get_info()[0]["rgb"]
        for a in procgen_actions:
            frame = to_frame(rgb)
            env.act(np.array([a], dtype=np.int32))
            _, _, first = env.observe()
            rgb = env.get_info()[0]["rgb"]  # the state after action a
            yield frame, bool(first[0])
    finally:
        env.close()


def open_h264(path: Path, fps: int, crf: int):
    container = av.open(str(path), mode="w", format="mp4")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height = WIDTH, HEIGHT
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, fps)
    stream.codec_context.thread_count = 1
    # One thread, and no macroblock-tree rate control: with mbtree on, the libx264 bundled in
    # PyAV 18.1.0 gives different bytes (and decoded pixels) for identical input from one
    # encoder instance to the next within a process; with mbtree=0 the output is reproducible.
    stream.options = {"crf": str(crf), "threads": "1", "x264-params": "mbtree=0"}
    return container, stream


def record_segment(
    out: Path,
    seed: int,
    segment: int,
    frames: int,
    fps: int,
    hold_min: int,
    hold_max: int,
    crf: int,
) -> dict:
    name = f"{GAME}-{seed}-{segment:04d}"
    video, log = out / f"{name}.mp4", out / f"{name}.actions.parquet"
    env_seed = env_seed_for(seed, segment)
    rng = np.random.default_rng([seed, segment])
    procgen_actions = sticky_policy(rng, frames, hold_min, hold_max)
    resets = np.zeros(frames, dtype=bool)

    tmp_video = out / f".partial-{name}.mp4"
    container, stream = open_h264(tmp_video, fps, crf)
    try:
        for i, (frame, reset) in enumerate(play(env_seed, procgen_actions)):
            resets[i] = reset
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            container.mux(stream.encode(vf))
        container.mux(stream.encode())
    finally:
        container.close()

    effective = PROCGEN_TO_EFFECTIVE[procgen_actions]
    table = pa.table(
        {
            "frame": pa.array(np.arange(frames, dtype=np.int64), pa.int64()),
            "time_s": pa.array(np.arange(frames, dtype=np.int64) / fps, pa.float64()),
            "action": pa.array(effective, pa.int64()),
            "action_name": pa.array([ACTION_NAMES[a] for a in effective], pa.string()),
            "procgen_action": pa.array(procgen_actions, pa.int64()),
            "reset": pa.array(resets, pa.bool_()),
        }
    )
    tmp_log = out / f".partial-{name}.actions.parquet"
    pq.write_table(table, tmp_log)
    os.replace(tmp_log, log)
    os.replace(tmp_video, video)  # the video last: both present means the segment is done
    return {"resets": int(resets.sum())}


def manifest_row(out: Path, seed: int, segment: int, fps: int) -> dict:
    name = f"{GAME}-{seed}-{segment:04d}"
    log = out / f"{name}.actions.parquet"
    reset = pq.read_table(log, columns=["reset"]).column("reset").to_numpy()
    return {
        "uri": str((out / f"{name}.mp4").resolve()),
        "actions_uri": str(log.resolve()),
        "game": GAME,
        "seed": seed,
        "segment": segment,
        "env_seed": env_seed_for(seed, segment),
        "fps": fps,
        "frames": len(reset),
        "resets": int(reset.sum()),
    }


MANIFEST_SCHEMA = pa.schema(
    [
        ("uri", pa.string()),
        ("actions_uri", pa.string()),
        ("game", pa.string()),
        ("seed", pa.int64()),
        ("segment", pa.int64()),
        ("env_seed", pa.int64()),
        ("fps", pa.int64()),
        ("frames", pa.int64()),
        ("resets", pa.int64()),
    ]
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Record CoinRun (procgen, hard mode) gameplay by a seeded sticky random "
        "policy as 160x90 H.264 mp4 videos with per-frame action logs and a manifest.parquet. "
        "Frame i is the picture before action i; row i of the log is the action held from "
        "frame i to frame i+1. Resumable; same arguments give the same bytes.",
        epilog="Example: genie record coinrun --out corpus-s0 --segments 120 --seconds 33 --seed 0",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output directory (created if missing); holds coinrun-<seed>-<i:04d>.mp4, "
        "coinrun-<seed>-<i:04d>.actions.parquet and manifest.parquet",
    )
    p.add_argument(
        "--segments",
        type=int,
        required=True,
        help="number of segments (videos) to record, numbered 0..N-1; each is a fresh "
        "game with its own level seed",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=33.0,
        help="length of each video in seconds; frames = round(seconds*fps)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="run seed K (0 <= K < 21474): segment i plays procgen rand_seed K*100000+i "
        "and its policy uses numpy default_rng([K, i])",
    )
    p.add_argument(
        "--hold-min",
        type=int,
        default=1,
        help="the policy holds each uniformly drawn procgen action (15 ids) for a "
        "uniform number of steps in [hold-min, hold-max]; this is the minimum",
    )
    p.add_argument("--hold-max", type=int, default=5, help="maximum hold, in steps (= frames)")
    p.add_argument(
        "--fps",
        type=int,
        default=10,
        help="video frame rate; one game step per frame, so it also sets how many "
        "game steps a second of video covers",
    )
    p.add_argument("--crf", type=int, default=18, help="x264 constant rate factor")
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="processes recording segments side by side (default: the CPUs this process may "
        "use, at most 16)",
    )
    args = p.parse_args(argv)
    if not 1 <= args.workers <= MAX_WORKERS:
        p.error(f"--workers must be in 1..{MAX_WORKERS}, got {args.workers}")
    if args.segments < 0 or args.seconds <= 0 or args.fps <= 0:
        p.error("--segments must be >= 0, --seconds and --fps > 0")
    if not 1 <= args.hold_min <= args.hold_max:
        p.error("need 1 <= --hold-min <= --hold-max")
    if not args.seed >= 0 or env_seed_for(args.seed, max(args.segments - 1, 0)) >= 2**31:
        p.error("--seed*100000 + segment must be in [0, 2**31)")
    if args.segments > SEED_STRIDE:
        p.error(f"at most {SEED_STRIDE} segments per seed")
    return args


def timed_segment(arguments: tuple) -> tuple[int, dict, float]:
    """`record_segment(*arguments)` as (segment, its info, seconds it took): a worker's unit of
    work. A failure is raised again naming the segment."""
    segment, start = arguments[2], time.perf_counter()
    try:
        info = record_segment(*arguments)
    except Exception as error:
        raise RuntimeError(f"segment {segment}: {type(error).__name__}: {error}") from error
    return segment, info, time.perf_counter() - start


def worker_start() -> None:
    """A worker's start: Ctrl-C is the parent's to handle (it terminates the workers), and on
    Linux the worker ends with its parent however the parent ends (a kill included)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def main(argv=None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    frames = round(args.seconds * args.fps)
    start = time.perf_counter()
    todo = []
    for i in range(args.segments):
        name = f"{GAME}-{args.seed}-{i:04d}"
        if (out / f"{name}.mp4").exists() and (out / f"{name}.actions.parquet").exists():
            print(f"segment {i + 1}/{args.segments} {name}: exists, skipped", flush=True)
        else:
            todo.append(i)
    work = [
        (out, args.seed, i, frames, args.fps, args.hold_min, args.hold_max, args.crf) for i in todo
    ]
    workers = max(1, min(args.workers, len(todo)))
    pool = get_context("spawn").Pool(workers, worker_start) if workers > 1 else None
    try:
        done = (
            map(timed_segment, work) if pool is None else pool.imap_unordered(timed_segment, work)
        )
        for count, (i, info, dt) in enumerate(done, start=1):
            print(
                f"[{count}/{len(todo)}] segment {i + 1}/{args.segments} {GAME}-{args.seed}-"
                f"{i:04d}: {frames} frames, {info['resets']} resets, {dt:.2f} s, "
                f"{frames / dt:.0f} frames/s",
                flush=True,
            )
    except BaseException:
        if pool is not None:
            pool.terminate()  # Ctrl-C or a failed segment: the others stop now, not when done
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    recorded, skipped = len(todo), args.segments - len(todo)
    rows = [manifest_row(out, args.seed, i, args.fps) for i in range(args.segments)]
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    tmp = out / ".partial-manifest.parquet"
    pq.write_table(table, tmp)
    os.replace(tmp, out / "manifest.parquet")
    total = time.perf_counter() - start
    print(
        f"done: {recorded} recorded, {skipped} skipped, {total:.1f} s with {workers} "
        f"process(es) ({recorded * frames / max(total, 1e-9):.0f} frames/s); manifest {out / 'manifest.parquet'}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
