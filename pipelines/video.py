"""The one place that writes and reads video with PyAV.

Frames are RGB uint8 arrays shaped (H, W, 3). The same frames give the same bytes on every run
(clip ids and dataset hashes depend on it): encoders run single-threaded, libx264 without
macroblock-tree rate control, libvpx at a fixed speed, and containers are written bit-exact.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Without macroblock-tree rate control: with it, the libx264 in PyAV's wheels gives different
# bytes for the same frames from one run to the next (seen on small frames, e.g. 64x36).
X264_REPRODUCIBLE = {"x264-params": "mbtree=0"}
# libvpx in realtime mode with a positive cpu-used picks its speed frame by frame from how long
# the last frames took to encode, so the bytes depend on the machine's load; a negative value
# fixes the speed at its magnitude.
VPX_REPRODUCIBLE = {"deadline": "realtime", "cpu-used": "-8"}
# container suffix -> (codec, pixel format, codec options)
CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    ".mp4": ("libx264", "yuv420p", {"preset": "veryfast", "crf": "20", **X264_REPRODUCIBLE}),
    ".mkv": ("libx264", "yuv420p", {"preset": "veryfast", "crf": "20", **X264_REPRODUCIBLE}),
    ".webm": (
        "libvpx",
        "yuv420p",
        {**VPX_REPRODUCIBLE, "crf": "10", "b": "1M"},
    ),
}
VFR_TIME_BASE = Fraction(1, 1000)
# Without it the Matroska/WebM muxer writes a random segment UID and the wall-clock date, so the
# same frames would give different bytes (and so different clip ids) on every run.
BITEXACT = {"fflags": "+bitexact"}


def write_video(
    target: str | Path | io.BytesIO,
    frames: Iterable[np.ndarray],
    fps: int | Fraction,
    container: str = ".mp4",
    options: dict[str, str] | None = None,
    timestamps: Sequence[float] | None = None,
) -> int:
    """Encode RGB frames into `target` (a path or a BytesIO). Returns the number of frames.

    `timestamps` (seconds, one per frame) gives a variable-frame-rate stream; without it,
    frames are spaced 1/fps apart.
    """
    suffix = Path(target).suffix if isinstance(target, str | Path) else container
    codec, pix_fmt, defaults = CODECS[suffix]
    fmt = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm"}[suffix]
    count = 0
    with av.open(target, mode="w", format=fmt, container_options=BITEXACT) as out:
        stream = None
        for frame in frames:
            if stream is None:
                stream = out.add_stream(codec, rate=Fraction(fps))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = pix_fmt
                stream.options = {**defaults, **(options or {})}
                stream.codec_context.thread_count = 1
                if timestamps is not None:
                    stream.codec_context.time_base = VFR_TIME_BASE
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            if timestamps is not None:
                video_frame.pts = round(timestamps[count] / VFR_TIME_BASE)
                video_frame.time_base = VFR_TIME_BASE
            out.mux(stream.encode(video_frame))
            count += 1
        if stream is not None:
            out.mux(stream.encode())
    return count


def encode_mp4(frames: np.ndarray, fps: int, crf: int = 18) -> bytes:
    """A (T, H, W, 3) uint8 clip as H.264 mp4 bytes (what a curated clip row stores)."""
    buffer = io.BytesIO()
    write_video(buffer, frames, fps, container=".mp4", options={"crf": str(crf)})
    return buffer.getvalue()


def read_frames(source: str | Path | bytes) -> np.ndarray:
    """Every frame of a (small) video as a (T, H, W, 3) uint8 array, at its stored rate."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(handle) as container:
        frames = [f.to_ndarray(format="rgb24", threads=1) for f in container.decode(video=0)]
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
