"""Decode one source into shots and fixed-length clips: constant 10 FPS, 16:9 center crop, 160x90.

Frames are picked by presentation timestamp, not by counting: output frame k shows the source
frame on screen at time t0 + k / fps. That is right for variable-frame-rate captures (dropped or
repeated frames) and for any source rate. Only the frames on that timeline are converted and
scaled (the costly part after decoding), straight to the output size by swscale with area
interpolation; a 16:9 crop of a different aspect is taken by scaling the whole frame so the crop
has the output size, then slicing, which costs no extra pass.

A hard cut (a level reset, an edit) splits the source into shots: between two output frames
whose colour histograms differ by more than `cut_threshold`. Clips are cut within shots, so no
clip holds a cut: one every `stride_frames` from the shot's first frame, then, when the frames
left at the shot's end are at least half a clip, one more that ends on the shot's last frame
(overlapping the one before), so a shot loses less than half a clip at its end instead of up
to a whole one.
A shot shorter than a clip gives none and is counted as such. Clip starts are output-frame
numbers of the source, so the same source always gives the same clips and clip ids.

Hostile input is bounded. Only video containers are opened (a format whitelist: an image or a
text file renamed `.mp4` is refused before FFmpeg decodes anything), and FFmpeg itself refuses
pictures above `max_pixels` while probing, so a decompression bomb costs nothing. Sources
declaring more than `max_duration_s` are refused; decoding stops at `max_duration_s` of stream
time and when `time_budget_s` of wall time is spent, checked for every decoded frame and every
output frame (a two-frame file with an hours-long timestamp gap stops on time too); what was
decoded until then is kept, with a note.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av
import av.logging
import numpy as np

from pipelines.curation.filters.scene_cut import frame_histogram, histogram_change
from pipelines.curation.frame_skip import FrameSkippingDecoder

# FFmpeg demuxers of the listed video suffixes (mp4/mov/m4v/3gp, mkv/webm, avi, flv, ts,
# mpg/mpeg, wmv, ogv). Anything else (png_pipe, image2, a text file) is refused at open.
VIDEO_DEMUXERS = ("mov", "matroska", "avi", "flv", "mpegts", "mpeg", "mpegvideo", "asf", "ogg")
_OVER_MAX_PIXELS = re.compile(r"Picture size (\d+)x(\d+) exceeds specified max pixel count")


@dataclass(frozen=True)
class DecodeSpec:
    """How sources become clips. Checked by the job config (jobs/curation/config.py)."""

    fps: int = 10
    width: int = 160
    height: int = 90
    clip_frames: int = 160  # 16 s at 10 FPS
    stride_frames: int = (
        160  # start of one clip to the next within a shot; = clip_frames: no overlap
    )
    cut_threshold: float = 0.35  # histogram change (0-1) that splits shots; 1 never splits
    max_duration_s: float = 6 * 3600.0
    max_pixels: int = 7680 * 4320
    time_budget_s: float = 1800.0
    crf: int = 18

    @property
    def clip_seconds(self) -> float:
        return self.clip_frames / self.fps

    def clip_starts(self, length: int) -> list[int]:
        """First frames of the clips of a shot of `length` output frames, from its start: one
        every `stride_frames`, then one ending at the shot's last frame when the frames after
        the last of those are at least half a clip (so a shot loses less than half a clip)."""
        if length < self.clip_frames:
            return []
        starts = list(range(0, length - self.clip_frames + 1, self.stride_frames))
        if 2 * (length - starts[-1] - self.clip_frames) >= self.clip_frames:
            starts.append(length - self.clip_frames)
        return starts

    def frames_in_clips(self, length: int) -> int:
        """Output frames that the clips of a shot of `length` frames cover."""
        covered = end = 0
        for start in self.clip_starts(length):
            covered += start + self.clip_frames - max(start, end)
            end = start + self.clip_frames
        return covered


class NoVideoStream(ValueError):
    """A readable container without a video stream (audio only, subtitles, data): an error,
    since whatever was meant to be listed here is not a video."""


class UnsupportedContainer(ValueError):
    """A file whose format is not a video container (an image, a playlist, raw data)."""


class SourceRejected(Exception):
    """A readable source that curation will not decode (a reason, not an error)."""

    def __init__(self, reason: str, detail: str, score: float | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.score = reason, detail, score


@dataclass(frozen=True)
class Clip:
    index: int  # clip number within the source
    start_frame: int  # first frame on the source's output timeline (fps)
    shot: int  # shot number within the source
    frames: np.ndarray  # (clip_frames, height, width, 3) uint8
    histograms: np.ndarray  # (clip_frames, 64) colour histograms (scene_cut.frame_histogram)

    def start_s(self, fps: int) -> float:
        return self.start_frame / fps


def scale_plan(width: int, height: int, out_w: int, out_h: int) -> tuple[int, int, int, int]:
    """(scaled width, scaled height, x0, y0): scale the frame so its centered out_w:out_h crop
    is exactly out_w x out_h, then slice at (x0, y0)."""
    if width * out_h >= height * out_w:  # wider than the target: crop the sides
        scaled_w, scaled_h = max(out_w, round(width * out_h / height)), out_h
    else:  # taller: crop top and bottom
        scaled_w, scaled_h = out_w, max(out_h, round(height * out_w / width))
    return scaled_w, scaled_h, (scaled_w - out_w) // 2, (scaled_h - out_h) // 2


def open_video(file: str | BinaryIO, max_pixels: int) -> av.container.InputContainer:
    """Open a video container without letting FFmpeg decode anything outside the whitelist or
    above `max_pixels` (probing a stream decodes its first frame)."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(True) as logs:
            try:
                container = av.open(
                    file,
                    metadata_errors="ignore",
                    container_options={"format_whitelist": ",".join(VIDEO_DEMUXERS)},
                    options={"max_pixels": str(max_pixels)},
                )
            except av.error.ArgumentError:
                refused = [name for _, name, message in logs if "not on whitelist" in message]
                if not refused:
                    raise
                raise UnsupportedContainer(
                    f"format {refused[0]!r} is not a video container ({', '.join(VIDEO_DEMUXERS)})"
                ) from None
    finally:
        av.logging.set_level(level)
    for _, _, message in logs:
        if match := _OVER_MAX_PIXELS.search(message):
            container.close()
            raise SourceRejected(
                "too_large",
                f"{match[1]}x{match[2]} is above max_pixels={max_pixels} (refused unread)",
            )
    return container


class ClipDecoder:
    """One source opened for decoding; `clips()` streams its clips, then the stats are final.

    The time budget runs from `started` (default: now) on the given clock. Frames no output
    tick shows are skipped by the decoder where it can (frame_skip.py; the clips are the same
    with `skip_unshown=False`)."""

    def __init__(
        self,
        file: str | BinaryIO,
        spec: DecodeSpec,
        clock: Callable[[], float] = time.monotonic,
        started: float | None = None,
        skip_unshown: bool = True,
    ):
        self.spec = spec
        self.skip_unshown = skip_unshown  # let FFmpeg skip frames no output tick shows
        self._clock = clock
        self._deadline = (clock() if started is None else started) + spec.time_budget_s
        self.container = open_video(file, spec.max_pixels)
        if not self.container.streams.video:
            audio = len(self.container.streams.audio)
            self.close()
            raise NoVideoStream(f"no video stream ({audio} audio stream(s))")
        self.stream = self.container.streams.video[0]
        context = self.stream.codec_context
        context.thread_count = 1  # one core per task; the cluster parallelises
        context.options = {"max_pixels": str(spec.max_pixels)}  # the decoder refuses bigger
        self.width, self.height = int(context.width or 0), int(context.height or 0)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.source_fps = float(rate) if rate else 0.0
        self.declared_s = self._declared_duration()
        self.frames_decoded = 0
        self.output_frames = 0  # frames on the output timeline (fps), whether in a clip or not
        self.shots = 0
        self.cut_frames: list[int] = []  # first output frame of every shot after the first
        self.clips_made = 0
        self.short_shots = 0  # shots shorter than a clip: they give no clip
        self.frames_in_clips = 0  # output frames covered by clips
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

    @property
    def cuts(self) -> int:
        return max(0, self.shots - 1)

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> ClipDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clips(self) -> Iterator[Clip]:
        """The clips of every shot, in order, at `DecodeSpec.clip_starts` within the shot."""
        size = self.spec.clip_frames
        recent: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=size)  # the shot's last
        # `size` frames, each with its colour histogram
        shot_start = next_start = 0
        previous: np.ndarray | None = None  # colour histogram of the frame before
        for k, frame in self._timeline():
            image = frame()
            histogram = frame_histogram(image)
            change = 0.0 if previous is None else histogram_change(previous, histogram)
            previous = histogram
            if change > self.spec.cut_threshold:
                yield from self._end_shot(shot_start, k, recent)
                self.cut_frames.append(k)
                shot_start = next_start = k
                recent.clear()
            recent.append((image, histogram))
            if k == next_start + size - 1:
                yield self._clip(next_start, recent)
                next_start += self.spec.stride_frames
        if self.output_frames > shot_start:
            yield from self._end_shot(shot_start, self.output_frames, recent)

    def _clip(self, start: int, recent: deque[tuple[np.ndarray, np.ndarray]]) -> Clip:
        self.clips_made += 1
        frames, histograms = zip(*recent, strict=True)
        return Clip(self.clips_made - 1, start, self.shots, np.stack(frames), np.stack(histograms))

    def _end_shot(
        self, start: int, end: int, recent: deque[tuple[np.ndarray, np.ndarray]]
    ) -> Iterator[Clip]:
        """Count the shot [start, end), and give its clip aligned to the end if one is due (the
        only start off the stride grid; `recent` then holds exactly its frames)."""
        length = end - start
        self.shots += 1
        self.short_shots += length < self.spec.clip_frames
        self.frames_in_clips += self.spec.frames_in_clips(length)
        starts = self.spec.clip_starts(length)
        if starts and starts[-1] % self.spec.stride_frames:
            yield self._clip(end - self.spec.clip_frames, recent)

    def _over_budget(self) -> bool:
        if self._clock() > self._deadline:
            self.note = f"stopped after time_budget_s={self.spec.time_budget_s:g}"
            return True
        return False

    def _timeline(self) -> Iterator[tuple[int, Callable[[], np.ndarray]]]:
        """(k, frame) for every output frame k: the source frame shown at t0 + k / fps.

        Times stay integer timestamps (exact, and cheap per frame): output frame k is due
        before timestamp pts when k * den < (pts - pts0) * num * fps, for time base num/den.
        The frame is a thunk that converts a decoded frame once however many ticks show it."""
        spec = self.spec
        time_base = self.stream.time_base or Fraction(1, 90000)
        num, den = time_base.numerator * spec.fps, time_base.denominator
        limit = spec.max_duration_s * time_base.denominator / time_base.numerator  # in pts
        pts0: int | None = None
        previous: av.VideoFrame | None = None
        previous_pts = 0
        interval = max(1, round(den / num))  # pts a frame stays on screen; 1/fps until known

        def show(frame: av.VideoFrame, until: float) -> Iterator[tuple[int, _Converter]]:
            converted = _Converter(frame, spec)
            while self.output_frames * den < until * num:
                if self._over_budget():
                    return
                self.output_frames += 1
                yield self.output_frames - 1, converted

        decoder = FrameSkippingDecoder(self.container, self.stream, num, den)
        for frame in decoder.frames():
            self.frames_decoded += 1
            if frame.width * frame.height > spec.max_pixels:
                raise ValueError(f"frame of {frame.width}x{frame.height} above max_pixels")
            pts = frame.pts if frame.pts is not None else previous_pts + interval
            if previous is not None and pts <= previous_pts:
                continue  # a repeated or out-of-order timestamp: the earlier frame stands
            if pts0 is None:
                pts0 = pts
                decoder.pts0 = pts0 if self.skip_unshown else None
            if pts - pts0 > limit:
                self.note = f"stopped at max_duration_s={spec.max_duration_s:g}"
                break
            if previous is not None:
                interval = pts - previous_pts
                yield from show(previous, pts - pts0)
            previous, previous_pts = frame, pts
            if self.note or self._over_budget():
                return
        if previous is not None and pts0 is not None and not self.note:
            # the last frame, shown for one interval (of the packets: frames before it may
            # have been skipped)
            interval = decoder.last_interval if decoder.skipped else interval
            yield from show(previous, min(previous_pts + interval - pts0, limit))


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
