"""Metrics against values known in closed form or computed independently (scikit-image)."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest
import torch

from models import metrics
from models.metrics import (
    PSNR_MAX_DB,
    action_alignment,
    camera_motion,
    delta_psnr,
    frechet_distance,
    fvd,
    motion_agreement,
    psnr,
    ssim,
)


def smooth_image() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """A deterministic (3, 32, 40) image in [0.1, 0.9] and its index grids."""
    c, i, j = torch.meshgrid(
        *(torch.arange(n, dtype=torch.float64) for n in (3, 32, 40)), indexing="ij"
    )
    image = 0.5 + 0.4 * torch.sin(0.3 * i + 0.2 * j + c) * torch.cos(0.15 * j - 0.1 * i * c)
    return image, (c, i, j)


# PSNR ---------------------------------------------------------------------------------------


def test_psnr_of_identical_frames_is_the_cap():
    frames = torch.rand(2, 5, 3, 16, 16)
    assert torch.equal(psnr(frames, frames), torch.full((2, 5), PSNR_MAX_DB, dtype=torch.float64))


def test_psnr_of_a_constant_offset_is_exact():
    target = torch.full((4, 3, 8, 8), 0.5)
    for offset, expected in ((0.1, 20.0), (0.01, 40.0), (0.5, 20 * math.log10(2))):
        got = psnr(target + offset, target)
        assert got.shape == (4,)
        assert got.tolist() == pytest.approx([expected] * 4, abs=1e-5)


def test_psnr_of_gaussian_noise_matches_its_level():
    generator = torch.Generator().manual_seed(0)
    target = torch.full((3, 3, 128, 128), 0.5)
    for sigma in (0.01, 0.05, 0.1):
        noisy = target + sigma * torch.randn(target.shape, generator=generator)
        expected = -20 * math.log10(sigma)  # MSE = sigma^2; no clipping at 0.5 +- 5 sigma
        assert psnr(noisy, target).mean().item() == pytest.approx(expected, abs=0.05)


def test_psnr_clamps_generated_frames_to_the_displayable_range():
    target = torch.ones(1, 3, 8, 8)
    assert psnr(target + 5.0, target).item() == PSNR_MAX_DB


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


# SSIM ---------------------------------------------------------------------------------------


def test_ssim_of_identical_images_is_one():
    frames = torch.rand(2, 3, 3, 24, 24)
    assert torch.allclose(ssim(frames, frames), torch.ones(2, 3, dtype=torch.float64))


def test_ssim_of_constant_images_has_the_closed_form():
    # No variance anywhere: SSIM = (2ab + C1) / (a^2 + b^2 + C1) exactly.
    a, b = 0.3, 0.6
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim(torch.full((1, 16, 20), a), torch.full((1, 16, 20), b)).item()
    assert got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("name", "expected_ssim", "expected_psnr"),
    [
        # scikit-image 0.26.0: structural_similarity(x, y, channel_axis=0, gaussian_weights=True,
        # sigma=1.5, use_sample_covariance=False, data_range=1.0), peak_signal_noise_ratio(x, y,
        # data_range=1.0); computed in a separate venv, on the same image built with NumPy.
        ("perturbed", 0.8838771622878997, 26.10338483894738),
        ("inverted", -0.7443309387891294, 8.021217460431178),
        ("low_contrast", 0.7992630190415607, 20.062417286990424),
    ],
)
def test_ssim_and_psnr_match_scikit_image(name, expected_ssim, expected_psnr):
    image, (c, i, j) = smooth_image()
    other = {
        "perturbed": (image + 0.1 * torch.sin(1.7 * i) * torch.cos(2.3 * j + c)).clamp(0, 1),
        "inverted": 1 - image,
        "low_contrast": 0.5 * image + 0.25,
    }[name]
    assert ssim(other, image).item() == pytest.approx(expected_ssim, abs=1e-7)
    assert ssim(image, other).item() == pytest.approx(expected_ssim, abs=1e-7)
    assert psnr(other, image).item() == pytest.approx(expected_psnr, abs=1e-7)


def test_ssim_falls_as_noise_grows():
    image, _ = smooth_image()
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(image.shape, generator=generator, dtype=torch.float64)
    scores = [ssim(image + sigma * noise, image).item() for sigma in (0.0, 0.02, 0.05, 0.1, 0.3)]
    assert scores[0] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(scores)), scores


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(3, 8, 64), torch.zeros(3, 8, 64))


# ΔtPSNR -------------------------------------------------------------------------------------


def test_delta_psnr_compares_frame_t_of_both_generations():
    truth = torch.full((2, 6, 3, 8, 8), 0.5)
    inferred, random = truth.clone(), truth.clone()
    inferred[:, 3] += 0.01  # frame x_4: PSNR 40 dB
    random[:, 3] += 0.1  # frame x_4: PSNR 20 dB
    random[:, 4] += 0.5  # other frames must not count
    assert delta_psnr(truth, inferred, random, t=4) == pytest.approx(20.0, abs=1e-4)
    assert delta_psnr(truth, random, inferred, t=4) == pytest.approx(-20.0, abs=1e-4)
    # t is 1-based with x_1 the prompt: t = 5 reads index 4.
    assert delta_psnr(truth, inferred, random, t=5) == pytest.approx(
        PSNR_MAX_DB - 20 * math.log10(2), abs=1e-4
    )


def test_delta_psnr_rejects_bad_inputs():
    video = torch.zeros(1, 4, 3, 8, 8)
    with pytest.raises(ValueError, match="t must be in"):
        delta_psnr(video, video, video, t=5)
    with pytest.raises(ValueError, match="share one"):
        delta_psnr(video, video[:, :3], video)


# Fréchet distance and FVD -------------------------------------------------------------------


def test_frechet_distance_of_one_dimensional_gaussians():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2.
    got = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert got == pytest.approx(9.0 + 1.0)


def test_frechet_distance_of_non_commuting_covariances():
    # For 2x2 PSD matrices Tr sqrt(AB) = sqrt(Tr(AB) + 2 sqrt(det A det B)).
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    rotation = np.array([[math.cos(0.7), -math.sin(0.7)], [math.sin(0.7), math.cos(0.7)]])
    b = rotation @ np.diag([3.0, 0.2]) @ rotation.T
    trace_sqrt = math.sqrt(np.trace(a @ b) + 2 * math.sqrt(np.linalg.det(a) * np.linalg.det(b)))
    mean_a, mean_b = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    expected = 8.0 + np.trace(a) + np.trace(b) - 2 * trace_sqrt
    assert frechet_distance(mean_a, a, mean_b, b) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(mean_b, b, mean_a, a) == pytest.approx(expected, rel=1e-12)


def test_fvd_of_a_set_with_itself_is_zero_and_a_shift_costs_its_square():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 400)) * rng.uniform(0.1, 3.0, 400)  # rank-deficient cov
    assert fvd(features, features) == pytest.approx(0.0, abs=1e-6)
    shift = rng.normal(size=400)
    assert fvd(features, features + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_fvd_grows_with_the_spread_between_sets():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(256, 16))
    scores = [fvd(base, base * scale) for scale in (1.0, 1.2, 1.5, 2.0)]
    assert scores[0] == pytest.approx(0.0, abs=1e-9)
    # Scaling by s: the mean moves by (s - 1) mu and sqrt(S s^2 S) = s S, so
    # FD = (s - 1)^2 (|mu|^2 + Tr S).
    mean = base.mean(axis=0)
    spread = mean @ mean + np.trace(np.cov(base, rowvar=False))
    assert scores[1:] == pytest.approx([spread * (s - 1) ** 2 for s in (1.2, 1.5, 2.0)])


def test_fvd_rejects_too_few_or_mismatched_features():
    with pytest.raises(ValueError, match="N >= 2"):
        fvd(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="feature sizes differ"):
        fvd(np.zeros((3, 4)), np.zeros((3, 5)))


# Action alignment ---------------------------------------------------------------------------


def test_identical_and_renamed_codes_align_perfectly():
    actions = np.arange(600) % 6
    for codes in (actions, (actions * 5 + 3) % 6, torch.as_tensor((actions + 2) % 6)):
        result = action_alignment(codes, actions)
        assert result.nmi == pytest.approx(1.0)
        assert result.accuracy == 1.0
        assert result.chance_accuracy == pytest.approx(1 / 6)


def test_independent_codes_carry_no_information():
    grid = np.arange(4 * 3 * 10)
    codes, actions = grid % 4, (grid // 4) % 3  # every (code, action) pair equally often
    result = action_alignment(codes, actions)
    assert result.nmi == pytest.approx(0.0, abs=1e-12)
    assert result.accuracy == pytest.approx(1 / 3)
    assert result.chance_accuracy == pytest.approx(1 / 3)


def test_merged_and_split_actions_have_the_closed_form_nmi():
    # Four equally likely actions, codes merging them in pairs: I = ln 2, H = ln 4 and ln 2,
    # so NMI = ln 2 / ((ln 4 + ln 2) / 2) = 2/3.
    actions = np.arange(400) % 4
    merged = action_alignment(actions // 2, actions)
    assert merged.nmi == pytest.approx(2 / 3)
    assert merged.accuracy == pytest.approx(0.5)
    # The other way round (more codes than actions), many-to-one mapping loses nothing.
    split = action_alignment(actions, actions // 2)
    assert split.nmi == pytest.approx(2 / 3)
    assert split.accuracy == 1.0
    assert split.chance_accuracy == pytest.approx(0.5)


def test_action_alignment_of_constant_labelings():
    assert action_alignment(np.zeros(10), np.zeros(10)).nmi == 1.0
    assert action_alignment(np.zeros(10), np.arange(10) % 2).nmi == 0.0
    with pytest.raises(ValueError, match="pair up"):
        action_alignment(np.zeros(10), np.zeros(9))


def textured_view(dx: float, dy: float, seed: int = 0) -> torch.Tensor:
    """A (3, 90, 160) view of a smooth random world with the camera at (dx, dy) pixels: rendered
    at twice the size and area-downscaled, so half-pixel moves are real."""
    rng = np.random.default_rng(seed)
    world = cv2.GaussianBlur(rng.random((400, 600, 3)).astype(np.float32), (0, 0), 6)
    x, y = round(100 + 2 * dx), round(100 + 2 * dy)
    view = cv2.resize(world[y : y + 180, x : x + 320], (160, 90), interpolation=cv2.INTER_AREA)
    return torch.from_numpy((view - view.min()) / (view.max() - view.min())).permute(2, 0, 1)


@pytest.mark.parametrize("dx, dy", [(0, 0), (3, 0), (-5, 2), (8, -1), (0.5, 0), (-1.5, 0.5)])
def test_camera_motion_reads_the_pixels_the_camera_moved(dx, dy):
    start, moved = textured_view(0, 0), textured_view(dx, dy)
    motion = camera_motion(start[None], moved[None])[0]
    whole = float(dx).is_integer() and float(dy).is_integer()
    assert motion.tolist() == pytest.approx([dx, dy], abs=0.1 if whole else 0.25)


def level_over_backdrop(dx: int, dy: int) -> torch.Tensor:
    """A (3, 90, 160) CoinRun-like view: textured blocks of a level seen from a camera at
    (dx, dy) pixels, over a textured backdrop that stays put on screen."""
    rng = np.random.default_rng(1)
    blocks = np.kron(rng.random((20, 30)) < 0.1, np.ones((20, 20)))[..., None]  # 400 x 600
    level = blocks * cv2.GaussianBlur(rng.random((400, 600, 3)), (0, 0), 2)
    backdrop = 0.6 * cv2.GaussianBlur(rng.random((90, 160, 3)), (0, 0), 1)
    x, y = 100 + dx, 100 + dy
    view = level[y : y + 90, x : x + 160] + (1 - blocks[y : y + 90, x : x + 160]) * backdrop
    return torch.from_numpy(view).permute(2, 0, 1)


@pytest.mark.parametrize("dx, dy", [(0, 6), (-3, 10), (2, -4)])
def test_camera_motion_follows_the_level_over_a_backdrop_that_stays_put(dx, dy):
    start, moved = level_over_backdrop(0, 0), level_over_backdrop(dx, dy)
    motion = camera_motion(start[None], moved[None])[0]
    assert motion.tolist() == pytest.approx([dx, dy], abs=0.3)  # phase correlation: ~(0, 0)


def test_camera_motion_is_zero_where_no_move_explains_the_change():
    scene = textured_view(0, 0)
    corner = scene.clone()
    corner[:, :8, :18] = torch.rand(3, 8, 18, generator=torch.Generator().manual_seed(0))
    faded = 0.3 * scene
    appeared = scene.clone()
    appeared[:, 40:60, 70:90] = 1.0
    before = torch.stack([scene, scene, scene])
    after = torch.stack([corner, faded, appeared])  # a HUD corner redrawn, a fade, a sprite
    motion = camera_motion(before, after)
    assert motion.isfinite().all() and motion.abs().max() < 0.5, motion
    assert camera_motion(before[:0], after[:0]).shape == (0, 2)
    with pytest.raises(ValueError, match="max_shift"):
        camera_motion(before, after, max_shift=0)


def test_camera_motion_of_many_pairs_reads_each_as_alone(monkeypatch):
    """Over `MOTION_PAIRS_AT_ONCE` pairs go in batches (memory); each reads as it does alone."""
    monkeypatch.setattr(metrics, "MOTION_PAIRS_AT_ONCE", 2)
    moves = [(0, 0), (3, 0), (-5, 2), (8, -1), (0.5, 0)]
    before = torch.stack([textured_view(0, 0)] * 5).view(5, 1, 3, 90, 160)
    after = torch.stack([textured_view(dx, dy) for dx, dy in moves]).view(5, 1, 3, 90, 160)
    motion = camera_motion(before, after)
    assert motion.shape == (5, 1, 2)
    for i in range(5):
        assert torch.equal(motion[i], camera_motion(before[i], after[i]))


def test_camera_motion_of_still_and_featureless_frames_is_zero():
    flat = torch.full((2, 3, 90, 160), 0.4)
    assert camera_motion(flat, flat).abs().max() == 0
    frame = textured_view(0, 0)[None]
    assert camera_motion(frame, frame).abs().max() < 1e-6
    with pytest.raises(ValueError, match="one shape"):
        camera_motion(frame, frame[..., :80])


def test_motion_agreement_counts_the_moving_actions_whose_rollouts_move_their_way():
    true = {0: (2.0, 0.0), 1: (-1.5, 0.0), 2: (0.1, 0.1), 3: (0.0, 3.0)}
    assert motion_agreement(true, {0: (1.5, 0.2), 1: (-1.0, 0), 2: (5, 5), 3: (0, 2)}) == 1.0
    # action 1 moves the wrong way, action 3 not enough (under half); action 2 does not count
    assert motion_agreement(true, {0: (1.5, 0), 1: (1.0, 0), 2: (0, 0), 3: (0, 1)}) == 1 / 3
    assert motion_agreement({0: (0.0, 0.1)}, {0: (1.0, 1.0)}) is None
