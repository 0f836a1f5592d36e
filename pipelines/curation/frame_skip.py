"""Decode only what the output timeline shows: each packet whose frame no output tick lands on
is handed to the decoder with `skip_frame=NONREF`, so FFmpeg drops it unread when no other
frame references it (a non-reference B-frame) and decodes it anyway when one does.

At 30 FPS in, 10 FPS out, two frames in three are never shown; with B-frames about half of all
frames are non-reference, so decoding costs a third less. The output is unchanged, which is
the point: frame P (timestamp p) is shown by the output ticks k with
`ceil((p - pts0) * num / den) <= k < ceil((q - pts0) * num / den)`, q the next timestamp in
presentation order. The next timestamp is looked up among the packets seen so far and the next
`LOOKAHEAD` ones (more than any H.264/HEVC reorder depth); looking at a subset can only find
a later q, so a frame is skipped only when it is surely not shown. Streams whose packets lack
timestamps are decoded whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import av

LOOKAHEAD = 16  # packets demuxed ahead of the one being decoded


class FrameSkippingDecoder:
    """The frames of `stream` in presentation order, with unshown non-reference frames skipped.

    The output timeline is output frame k at pts0 + k * den / num (time-base units); `pts0` is
    set by the caller once the first frame is out (until then nothing is skipped)."""

    def __init__(self, container: av.container.InputContainer, stream: av.VideoStream,
                 num: int, den: int):  # fmt: skip
        self.container, self.stream, self.num, self.den = container, stream, num, den
        self.pts0: int | None = None
        self.skipped = 0  # packets handed over with skip_frame set
        self.last_interval = 0  # presentation gap before the last packet's timestamp
        self._seen: deque[int] = deque(maxlen=4 * LOOKAHEAD)  # recent and lookahead timestamps
        self._timed = True  # every packet so far had a timestamp

    def frames(self) -> Iterator[av.VideoFrame]:
        ahead: deque[av.Packet] = deque()
        context = self.stream.codec_context
        top = [None, None]  # the two largest timestamps seen
        for packet in self.container.demux(self.stream):
            if packet.pts is None:
                self._timed = self._timed and packet.size == 0  # the flush packet has none
            else:
                self._seen.append(packet.pts)
                if top[0] is None or packet.pts > top[0]:
                    top = [packet.pts, top[0]]
                elif top[1] is None or packet.pts > top[1]:
                    top[1] = packet.pts
            ahead.append(packet)
            if len(ahead) > LOOKAHEAD:
                yield from self._decode(context, ahead.popleft())
        while ahead:
            yield from self._decode(context, ahead.popleft())
        if top[1] is not None:
            self.last_interval = top[0] - top[1]

    def _decode(self, context: av.CodecContext, packet: av.Packet) -> Iterator[av.VideoFrame]:
        skip = self._timed and packet.pts is not None and not self._shown(packet.pts)
        context.skip_frame = "NONREF" if skip else "DEFAULT"
        self.skipped += skip
        yield from context.decode(packet)

    def _shown(self, pts: int) -> bool:
        """Whether an output tick lands on the frame of timestamp `pts` (True when unsure)."""
        if self.pts0 is None or pts < self.pts0:
            return True
        later = [other for other in self._seen if other > pts]
        if not later:
            return True  # the last frame, or the next one is out of sight
        first_tick = -(-(pts - self.pts0) * self.num // self.den)
        return first_tick * self.den < (min(later) - self.pts0) * self.num
