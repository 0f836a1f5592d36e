"""Crafted raw videos for the curation tests: real files PyAV wrote (or broke on purpose), short
and small so a whole corpus takes seconds, each made to trip exactly one rule.

Gameplay is the scrolling platformer of jobs/benchmarks/curate.py at 320x180 30 FPS unless said.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from jobs.benchmarks.curate import blurred, gameplay_frames
from pipelines.video import write_video

W, H, FPS = 320, 180, 30


def gameplay(path: Path, seconds: float, seed: int, size: tuple[int, int] = (W, H)) -> Path:
    write_video(path, gameplay_frames(seconds, FPS, size[0], size[1], seed), FPS)
    return path


def static(path: Path, seconds: float, seed: int) -> Path:
    """A paused game: one gameplay frame held."""
    frame = next(gameplay_frames(1, FPS, W, H, seed))
    write_video(path, (frame for _ in range(round(seconds * FPS))), FPS)
    return path


def black(path: Path, seconds: float) -> Path:
    write_video(path, (np.zeros((H, W, 3), np.uint8) for _ in range(round(seconds * FPS))), FPS)
    return path


def scene_cut(path: Path, seconds: float, seeds: tuple[int, int], at: float) -> Path:
    """Two different levels back to back: a hard cut `at` seconds in."""
    first = gameplay_frames(at, FPS, W, H, seeds[0])
    write_video(path, [*first, *gameplay_frames(seconds - at, FPS, W, H, seeds[1])], FPS)
    return path


def blurry(path: Path, seconds: float, seed: int) -> Path:
    write_video(path, blurred(gameplay_frames(seconds, FPS, W, H, seed), sigma=3.0), FPS)
    return path


def reencoded_copy(path: Path, seconds: float, seed: int) -> Path:
    """The same footage as `gameplay(.., seed)`, downscaled to 192x108 and re-encoded at crf 30:
    other bytes, same picture."""
    small = (
        cv2.resize(f, (192, 108), interpolation=cv2.INTER_AREA)
        for f in gameplay_frames(seconds, FPS, W, H, seed)
    )
    write_video(path, small, FPS, options={"crf": "30"})
    return path


def mpeg4_copy(path: Path, seconds: float, seed: int) -> Path:
    """The same footage as `gameplay(.., seed)` in MPEG-4 Part 2 (not H.264) in Matroska."""
    with av.open(str(path), mode="w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.bit_rate = 2_000_000
        for frame in gameplay_frames(seconds, FPS, W, H, seed):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def vp8_copy(path: Path, seconds: float, seed: int) -> Path:
    """The same footage as `gameplay(.., seed)` at 256x144 in VP8 in WebM."""
    small = (
        cv2.resize(f, (256, 144), interpolation=cv2.INTER_AREA)
        for f in gameplay_frames(seconds, FPS, W, H, seed)
    )
    write_video(path, small, FPS)
    return path


def tiny(path: Path, seconds: float, seed: int) -> Path:
    """48x28 pixels: far below the 90-pixel output height."""
    return gameplay(path, seconds, seed, size=(48, 28))


def vfr(path: Path, seconds: float, seed: int) -> tuple[Path, list[float]]:
    """Variable frame rate: gaps of 1/60 to 1/4 s, each frame stamped with its own time. Returns
    the path and the frame times."""
    times = _irregular_times(seconds, seed)
    frames = list(gameplay_frames(seconds, 60, W, H, seed))
    picked = [frames[min(len(frames) - 1, round(time * 60))] for time in times]
    write_video(path, picked, 60, timestamps=times)
    return path, times


def number_frame(i: int) -> np.ndarray:
    """A frame that shows the number i as three base-16 digits, one grey level per band."""
    frame = np.zeros((H, W, 3), np.uint8)
    for band in range(3):
        frame[band * H // 3 : (band + 1) * H // 3] = (i >> (4 * band)) % 16 * 16 + 8
    return frame


def numbered(path: Path, seconds: float, fps: int) -> Path:
    """Frame i shows the number i (see number_frame): decoding tells which frame came out."""
    count = round(seconds * fps)
    write_video(path, (number_frame(i) for i in range(count)), fps, options={"crf": "10"})
    return path


def vfr_numbered(path: Path, seconds: float, seed: int) -> tuple[Path, list[float]]:
    """Numbered frames at irregular times (gaps of 1/60 to 1/4 s). Returns path and times."""
    times = _irregular_times(seconds, seed)
    frames = (number_frame(i) for i in range(len(times)))
    write_video(path, frames, 60, options={"crf": "10"}, timestamps=times)
    return path, times


def _irregular_times(seconds: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    times: list[float] = []
    t = 0.0
    while t < seconds:
        times.append(round(t, 3))
        t += float(rng.choice([1 / 60, 1 / 30, 1 / 30, 0.1, 0.25]))
    return times


def truncated(path: Path, source: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def corrupt(path: Path, source: Path) -> Path:
    """A real mp4 whose bytes after the first kilobyte are noise."""
    data = bytearray(source.read_bytes())
    noise = np.random.default_rng(0).integers(0, 256, len(data) - 1024, dtype=np.uint8)
    data[1024:] = noise.tobytes()
    path.write_bytes(bytes(data))
    return path


def zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def not_a_video(path: Path) -> Path:
    path.write_text("these are my notes, not a video\n" * 20)
    return path


def audio_only(path: Path, seconds: float) -> Path:
    """An mp4 with one AAC stream and no video."""
    rate = 16000
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        samples = np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 440 / rate)
        samples = (samples * 0.3).astype(np.float32)
        for start in range(0, len(samples), 1024):
            chunk = samples[start : start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def shots(path: Path, seconds: float, seeds: tuple[int, ...], fps: int = 10) -> Path:
    """Levels of `seconds` each back to back: a hard cut every `seconds` (at 320x180)."""
    frames = [f for seed in seeds for f in gameplay_frames(seconds, fps, W, H, seed)]
    write_video(path, frames, fps)
    return path
