"""Decode one source into fixed-length clips: constant 10 FPS, 16:9 center crop, 160x90.

Frames are picked by presentation timestamp, not by counting: output frame k shows the source
frame on screen at time t0 + k / fps. That is right for variable-frame-rate captures (dropped or
repeated frames) and for any source rate. Only the frames that land in a clip are converted and
scaled (the costly part after decoding), straight to the output size by swscale with area
interpolation; a 16:9 crop of a different aspect is taken by scaling the whole frame so the crop
has the output size, then slicing, which costs no extra pass.

Hostile input is bounded: frames above `max_pixels` or sources declaring more than
`max_duration_s` are refused before decoding, decoding stops at `max_duration_s` of stream time
and when `time_budget_s` of wall time is spent; what was decoded until then is kept, with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np


@dataclass(frozen=True)
class DecodeSpec:
    """How sources become clips. Checked by the job config (jobs/curation/config.py)."""

    fps: int = 10
    width: int = 160
    height: int = 90
    clip_frames: int = 160  # 16 s at 10 FPS
    stride_frames: int = 160  # start of one clip to the next; = clip_frames: no overlap
    max_duration_s: float = 6 * 3600.0
    max_pixels: int = 7680 * 4320
    time_budget_s: float = 1800.0
    crf: int = 18

    @property
    def clip_seconds(self) -> float:
        return self.clip_frames / self.fps


class NoVideoStream(ValueError):
    """A readable container without a video stream (audio only, subtitles, data): an error,
    since whatever was meant to be listed here is not a video."""


class SourceRejected(Exception):
    """A readable source that curation will not decode (a reason, not an error)."""

    def __init__(self, reason: str, detail: str, score: float | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.score = reason, detail, score


@dataclass(frozen=True)
class Clip:
    index: int  # clip number within the source
    start_s: float  # from the source's first frame
    frames: np.ndarray  # (clip_frames, height, width, 3) uint8


def scale_plan(width: int, height: int, out_w: int, out_h: int) -> tuple[int, int, int, int]:
    """(scaled width, scaled height, x0, y0): scale the frame so its centered out_w:out_h crop
    is exactly out_w x out_h, then slice at (x0, y0)."""
    if width * out_h >= height * out_w:  # wider than the target: crop the sides
        scaled_w, scaled_h = max(out_w, round(width * out_h / height)), out_h
    else:  # taller: crop top and bottom
        scaled_w, scaled_h = out_w, max(out_h, round(height * out_w / width))
    return scaled_w, scaled_h, (scaled_w - out_w) // 2, (scaled_h - out_h) // 2


class ClipDecoder:
    """One source opened for decoding; `clips()` streams its clips, then the stats are final."""

    def __init__(
        self,
        file: str | BinaryIO,
        spec: DecodeSpec,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.spec = spec
        self._clock = clock
        self._started = clock()
        self.container = av.open(file, metadata_errors="ignore")
        if not self.container.streams.video:
            audio = len(self.container.streams.audio)
            self.close()
            raise NoVideoStream(f"no video stream ({audio} audio stream(s))")
        self.stream = self.container.streams.video[0]
        self.stream.codec_context.thread_count = 1  # one core per task; the cluster parallelises
        context = self.stream.codec_context
        self.width, self.height = int(context.width or 0), int(context.height or 0)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.source_fps = float(rate) if rate else 0.0
        self.declared_s = self._declared_duration()
        self.frames_decoded = 0
        self.output_frames = 0  # frames on the output timeline (fps), whether in a clip or not
        self.note = ""  # why decoding stopped early, if it did
        if self.width * self.height > spec.max_pixels:
            self.close()
            raise SourceRejected(
                "too_large", f"{self.width}x{self.height} is above max_pixels={spec.max_pixels}"
            )
        if self.declared_s is not None and self.declared_s > spec.max_duration_s:
            self.close()
            raise SourceRejected(
                "too_long",
                f"declares {self.declared_s:.0f} s, above max_duration_s={spec.max_duration_s:g}",
            )

    def _declared_duration(self) -> float | None:
        if self.stream.duration is not None and self.stream.time_base is not None:
            return float(self.stream.duration * self.stream.time_base)
        if self.container.duration is not None:
            return self.container.duration / av.time_base
        return None

    @property
    def decoded_s(self) -> float:
        return self.output_frames / self.spec.fps

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> ClipDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clips(self) -> Iterator[Clip]:
        """Clips of `clip_frames` frames, one every `stride_frames` output frames."""
        spec = self.spec
        buffer: list[np.ndarray] = []  # output frames from `next_start` on
        next_start, index = 0, 0
        for k, frame in self._timeline():
            if k < next_start:
                continue
            buffer.append(frame())
            if len(buffer) == spec.clip_frames:
                yield Clip(index, next_start / spec.fps, np.stack(buffer))
                index += 1
                next_start += spec.stride_frames
                buffer = buffer[spec.stride_frames :] if spec.stride_frames < len(buffer) else []

    def _timeline(self) -> Iterator[tuple[int, Callable[[], np.ndarray]]]:
        """(k, frame) for every output frame k: the source frame shown at t0 + k / fps.

        Times stay integer timestamps (exact, and cheap per frame): output frame k is due
        before timestamp pts when k * den < (pts - pts0) * num * fps, for time base num/den.
        The frame is a thunk so frames that land outside every clip are never converted."""
        spec = self.spec
        time_base = self.stream.time_base or Fraction(1, 90000)
        num, den = time_base.numerator * spec.fps, time_base.denominator
        limit = spec.max_duration_s * time_base.denominator / time_base.numerator  # in pts
        pts0: int | None = None
        previous: av.VideoFrame | None = None
        previous_pts = 0
        interval = max(1, round(den / num))  # pts a frame stays on screen; 1/fps until known
        k = 0
        for frame in self.container.decode(self.stream):
            self.frames_decoded += 1
            if frame.width * frame.height > spec.max_pixels:
                raise ValueError(f"frame of {frame.width}x{frame.height} above max_pixels")
            pts = frame.pts if frame.pts is not None else previous_pts + interval
            if previous is not None and pts <= previous_pts:
                continue  # a repeated or out-of-order timestamp: the earlier frame stands
            if pts0 is None:
                pts0 = pts
            if pts - pts0 > limit:
                self.note = f"stopped at max_duration_s={spec.max_duration_s:g}"
                break
            if previous is not None:
                interval = pts - previous_pts
                converted = _Converter(previous, spec)
                while k * den < (pts - pts0) * num:
                    self.output_frames = k + 1
                    yield k, converted
                    k += 1
            previous, previous_pts = frame, pts
            if self._clock() - self._started > spec.time_budget_s:
                self.note = f"stopped after time_budget_s={spec.time_budget_s:g} of decoding"
                break
        if previous is not None and pts0 is not None and not self.note:
            converted = _Converter(previous, spec)  # the last frame, shown for one interval
            while k * den < (previous_pts + interval - pts0) * num:
                self.output_frames = k + 1
                yield k, converted
                k += 1


class _Converter:
    """Converts one decoded frame at most once, however many output frames show it."""

    def __init__(self, frame: av.VideoFrame, spec: DecodeSpec):
        self.frame, self.spec, self.array = frame, spec, None

    def __call__(self) -> np.ndarray:
        if self.array is None:
            self.array = resize_frame(self.frame, self.spec.width, self.spec.height)
        return self.array


def resize_frame(frame: av.VideoFrame, out_w: int, out_h: int) -> np.ndarray:
    """16:9 (out_w:out_h) center crop at out_w x out_h, area-interpolated, RGB uint8."""
    scaled_w, scaled_h, x0, y0 = scale_plan(frame.width, frame.height, out_w, out_h)
    array = frame.to_ndarray(
        format="rgb24", width=scaled_w, height=scaled_h, interpolation="AREA", threads=1
    )
    if (scaled_w, scaled_h) != (out_w, out_h):
        array = np.ascontiguousarray(array[y0 : y0 + out_h, x0 : x0 + out_w])
    return array
