import hashlib
import io

import numpy as np
import pytest

from pipelines.video import write_video


@pytest.mark.parametrize("container", [".webm", ".mp4"])
def test_the_same_frames_give_the_same_bytes_however_fast_the_encoder_runs(container):
    """An encoder that adapts to its own speed makes the bytes (so clip ids and the held-out
    split) depend on the machine's load. Frame rates from 30 to 30,000 put each frame's time
    budget (which libvpx's realtime mode compares its encode time with) below and above what
    encoding a 160x90 frame takes on any machine, so some rate lands near the threshold."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(30)]
    for fps in (30, 300, 1000, 2000, 3000, 5000, 10000, 30000):
        digests = set()
        for _ in range(4):
            buffer = io.BytesIO()
            write_video(buffer, frames, fps, container=container)
            digests.add(hashlib.sha256(buffer.getvalue()).hexdigest())
        assert len(digests) == 1, (
            f"{container} at {fps} frames/s: {len(digests)} different encodings"
        )
