"""The PyTorch I3D against the reference JAX outputs, the safe weight fetch, and FVD on I3D."""

from __future__ import annotations

import io
import itertools
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from jobs.tools.check_i3d import REFERENCE, reference_clip
from jobs.tools.fetch_i3d import CHECKPOINT, NumpyOnlyUnpickler, read_checkpoint
from models.i3d import InceptionI3d, i3d_logits, load_i3d, same_padding, video_to_i3d_input
from models.metrics import fvd


@pytest.fixture(scope="module")
def i3d() -> InceptionI3d:
    try:
        return load_i3d()
    except FileNotFoundError as error:
        pytest.fail(f"{error} (`make install` fetches it)")


def test_port_matches_the_jax_reference(i3d):
    reference = np.load(REFERENCE, allow_pickle=False)
    clips = zip(reference["seeds"], reference["frames"], reference["kinds"], strict=True)
    for i, (seed, frames, kind) in enumerate(clips):
        clip = reference_clip(int(seed), int(frames), str(kind))
        # The input is regenerated from its seed: make sure it is the one JAX saw.
        assert clip.sum(dtype=np.float64) == pytest.approx(reference["input_sums"][i], rel=1e-9)
        with torch.no_grad():
            logits, features = i3d(torch.from_numpy(clip).permute(3, 0, 1, 2)[None])
        # Logits reach ~20; float32 convolutions in another order differ by ~1e-5.
        np.testing.assert_allclose(logits[0].numpy(), reference["logits"][i], rtol=0, atol=5e-4)
        np.testing.assert_allclose(features[0].numpy(), reference["features"][i], rtol=0, atol=5e-5)
        assert int(logits.argmax()) == int(reference["logits"][i].argmax())


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (224, 7, 2, (2, 3)),
        (5, 3, 2, (1, 1)),
        (5, 2, 2, (0, 1)),
        (4, 2, 2, (0, 0)),
        (8, 3, 1, (1, 1)),
    ],
)
def test_same_padding_puts_the_odd_pixel_after_as_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_video_to_i3d_input_resizes_and_rescales():
    frames = torch.rand(2, 16, 3, 90, 160)
    video = video_to_i3d_input(frames)
    assert video.shape == (2, 3, 16, 224, 224)
    assert video.min() >= -1 and video.max() <= 1
    assert torch.equal(
        video_to_i3d_input(torch.ones(1, 9, 1, 32, 32)), torch.ones(1, 3, 9, 224, 224)
    )
    with pytest.raises(ValueError, match="C in"):
        video_to_i3d_input(torch.zeros(1, 16, 4, 32, 32))


def test_i3d_rejects_clips_too_short_for_its_pooling():
    with pytest.raises(ValueError, match="T>=9"):
        InceptionI3d()(torch.zeros(1, 3, 8, 224, 224))


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_unpickler_admits_numpy_arrays_only():
    arrays = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    loaded = NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(arrays))).load()
    np.testing.assert_array_equal(loaded["params"]["w"], arrays["params"]["w"])
    with pytest.raises(pickle.UnpicklingError, match=r"refusing posix\.system"):
        NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(Exploit()))).load()


def test_fetch_refuses_a_checkpoint_with_another_hash(tmp_path):
    archive = tmp_path / "fake.tar.gz"
    payload = pickle.dumps({"params": {}})
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo(CHECKPOINT)
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    with pytest.raises(RuntimeError, match="SHA-256"):
        read_checkpoint(archive)


def moving_squares(count: int, frames: int, seed: int) -> torch.Tensor:
    """(count, frames, 3, 64, 64) in [0, 1]: colored squares gliding over a gradient."""
    generator = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    clips = torch.empty(count, frames, 3, 64, 64)
    for n in range(count):
        tint = torch.rand(3, 1, 1, generator=generator)
        background = (0.3 * tint + 0.4 * (x + y) / 2).expand(frames, 3, 64, 64).clone()
        for _ in range(3):
            color = torch.rand(3, generator=generator)
            start = torch.randint(0, 48, (2,), generator=generator)
            velocity = torch.randint(-3, 4, (2,), generator=generator)
            for t in range(frames):
                top, left = ((start + t * velocity) % 48).tolist()
                background[t, :, top : top + 16, left : left + 16] = color.view(3, 1, 1)
        clips[n] = background
    return clips


@pytest.mark.slow
def test_fvd_on_i3d_logits_is_zero_for_a_set_itself_and_grows_with_noise(i3d):
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    clips = moving_squares(8, 16, seed=0)
    clean = i3d_logits(i3d, clips).numpy()
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(clips.shape, generator=generator)
    scores = {0.0: fvd(clean, clean)}
    for sigma in (0.02, 0.05, 0.1, 0.2, 0.4):
        noisy = i3d_logits(i3d, (clips + sigma * noise).clamp(0, 1)).numpy()
        scores[sigma] = fvd(clean, noisy)
    print("FVD vs noise sigma:", {s: round(v, 2) for s, v in scores.items()})
    assert scores[0.0] == pytest.approx(0.0, abs=1e-3)
    values = list(scores.values())
    assert all(a < b for a, b in itertools.pairwise(values)), scores
