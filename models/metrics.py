"""Evaluation metrics of the Genie paper and DESIGN §6, on plain tensors and arrays.

Frames follow the models' convention: float (..., C, H, W) with values in [0, 1]; each metric
is computed per image (the last three dimensions) in float64 and returned per image, so a
caller averages over whatever batch and time dimensions it has. Generated frames are clamped
to [0, 1] first, as they would be when displayed.

- `psnr`, `ssim`: fidelity of reconstructions and generations.
- `delta_psnr`: controllability, ΔtPSNR of the paper.
- `fvd`: Fréchet distance between I3D features (`models.i3d.i3d_logits`) of two video sets.
- `action_alignment`: how well latent action codes identify the true actions.
- `camera_motion`, `motion_agreement`: whether rollouts holding a latent action move the world
  the way the true frames that action labels move, in pixels, at any speed (the shift that best
  carries what changed): ΔtPSNR says whether actions matter, this says which way they move the
  world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# PSNR of identical images is infinite; a finite cap keeps averages and MLflow plots usable.
PSNR_MAX_DB = 100.0  # the PSNR at MSE 1e-10
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _images(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if prediction.shape != target.shape or prediction.ndim < 3:
        raise ValueError(
            "prediction and target must be (..., C, H, W) of one shape, got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    return prediction.double().clamp(0, 1), target.double().clamp(0, 1)


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (peak 1.0), capped at PSNR_MAX_DB."""
    prediction, target = _images(prediction, target)
    mse = (prediction - target).square().mean(dim=(-3, -2, -1))
    return -10.0 * torch.log10(mse.clamp_min(10.0 ** (-PSNR_MAX_DB / 10)))


def _gaussian_window(device: torch.device) -> torch.Tensor:
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - SSIM_WINDOW // 2
    window = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return window / window.sum()


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), averaged over channels.

    The standard constants: 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, data
    range 1; statistics over the window positions inside the image (no padding). This equals
    scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`.
    """
    prediction, target = _images(prediction, target)
    *batch, c, h, w = prediction.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    window = _gaussian_window(prediction.device)

    def blur(x: torch.Tensor) -> torch.Tensor:  # separable Gaussian, VALID
        x = F.conv2d(x, window.view(1, 1, -1, 1))
        return F.conv2d(x, window.view(1, 1, 1, -1))

    x = prediction.reshape(-1, 1, h, w)
    y = target.reshape(-1, 1, h, w)
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return index.mean(dim=(-3, -2, -1)).reshape(*batch, c).mean(dim=-1)


def delta_psnr(
    truth: torch.Tensor,
    with_inferred_actions: torch.Tensor,
    with_random_actions: torch.Tensor,
    t: int = 4,
) -> float:
    """ΔtPSNR (Genie paper): PSNR(x_t, x̂_t) - PSNR(x_t, x̂'_t), averaged over the batch.

    All three are (B, T, C, H, W) videos in step with each other: frame 1 (index 0) is the
    prompt x_1 and frame t (index t - 1) is x_t. x̂ is generated from the same prompt with the
    latent actions the LAM infers from the ground truth, x̂' with actions drawn uniformly at
    random. The paper uses t = 4. Positive means the actions control the generation.
    """
    if not truth.shape == with_inferred_actions.shape == with_random_actions.shape:
        raise ValueError(
            "truth and both generations must share one (B, T, C, H, W) shape, got "
            f"{tuple(truth.shape)}, {tuple(with_inferred_actions.shape)}, "
            f"{tuple(with_random_actions.shape)}"
        )
    if truth.ndim != 5 or not 2 <= t <= truth.shape[1]:
        raise ValueError(
            f"t must be in [2, T] for (B, T, C, H, W) videos, got t={t} for {tuple(truth.shape)}"
        )
    frame = t - 1
    controlled = psnr(with_inferred_actions[:, frame], truth[:, frame])
    uncontrolled = psnr(with_random_actions[:, frame], truth[:, frame])
    return float((controlled - uncontrolled).mean())


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) for two Gaussians.

    Tr (S_a S_b)^(1/2) is the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S_a^(1/2) S_b S_a^(1/2) (same spectrum as S_a S_b). Symmetric eigendecompositions
    stay real and stable for the rank-deficient covariances of small sample sets, where a
    general matrix square root (scipy.linalg.sqrtm) returns complex noise.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    values, vectors = np.linalg.eigh(cov_a)
    sqrt_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
    return float(max(distance - 2 * trace_sqrt, 0.0))


def fvd(features_a: np.ndarray | torch.Tensor, features_b: np.ndarray | torch.Tensor) -> float:
    """Fréchet video distance between two sets of (N, D) I3D features (N >= 2 each).

    Use the 400-d Kinetics logits (`models.i3d.i3d_logits`), as the original FVD does, so
    figures compare with the literature. Few videos give a biased estimate (FVD papers use
    thousands); compare FVDs computed from sets of the same size.
    """
    stats = []
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        array = np.asarray(features, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] < 2:
            raise ValueError(f"{name} must be (N >= 2, D), got shape {array.shape}")
        stats.append((array.mean(axis=0), np.cov(array, rowvar=False)))
    if stats[0][0].shape != stats[1][0].shape:
        raise ValueError(f"feature sizes differ: {stats[0][0].shape[0]} and {stats[1][0].shape[0]}")
    return frechet_distance(*stats[0], *stats[1])


@dataclass(frozen=True)
class ActionAlignment:
    nmi: float  # normalized mutual information, arithmetic-mean normalization, in [0, 1]
    accuracy: float  # each code mapped to its most frequent true action (many-to-one)
    chance_accuracy: float  # always guessing the most frequent true action


def action_alignment(
    codes: np.ndarray | torch.Tensor, true_actions: np.ndarray | torch.Tensor
) -> ActionAlignment:
    """How well latent action codes identify the true actions, over paired transitions.

    NMI = I(code; action) / ((H(code) + H(action)) / 2), scikit-learn's default; 1 when the
    two labelings agree up to renaming. Accuracy maps each code to the action it most often
    comes with (many-to-one, the best any code -> action decoder does), so a LAM with more
    codes than the game has actions is not penalized for splitting one action over two codes;
    compare it with `chance_accuracy`.
    """
    codes = np.asarray(codes).reshape(-1)
    actions = np.asarray(true_actions).reshape(-1)
    if codes.shape != actions.shape or codes.size == 0:
        raise ValueError(
            f"codes and true_actions must pair up one to one, got {codes.size} and {actions.size}"
        )
    _, code_ids = np.unique(codes, return_inverse=True)
    _, action_ids = np.unique(actions, return_inverse=True)
    joint = np.zeros((code_ids.max() + 1, action_ids.max() + 1))
    np.add.at(joint, (code_ids, action_ids), 1.0)
    total = joint.sum()
    p_joint = joint / total
    p_code, p_action = p_joint.sum(axis=1), p_joint.sum(axis=0)

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    nonzero = p_joint > 0
    outer = np.outer(p_code, p_action)
    information = float((p_joint[nonzero] * np.log(p_joint[nonzero] / outer[nonzero])).sum())
    h_code, h_action = entropy(p_code), entropy(p_action)
    if h_code == 0.0 and h_action == 0.0:
        nmi = 1.0  # both constant: the labelings agree (scikit-learn's convention)
    else:
        nmi = float(np.clip(information / ((h_code + h_action) / 2), 0.0, 1.0))
    return ActionAlignment(
        nmi=nmi,
        accuracy=float(joint.max(axis=1).sum() / total),
        chance_accuracy=float(joint.sum(axis=0).max() / total),
    )


# Frame pairs `camera_motion` takes at once (its float64 spectra are ~2.5 MB a pair at 160x90).
MOTION_PAIRS_AT_ONCE = 64


def camera_motion(
    before: torch.Tensor,
    after: torch.Tensor,
    max_shift: int = 16,
    changed_above: float = 0.02,
    near: int = 1,
) -> torch.Tensor:
    """How far the camera moved between frames: (..., C, H, W) pairs -> (..., 2) float64
    (dx, dy) in pixels, sub-pixel.

    +dx is a camera moving right (the scene slides left on screen), +dy moving down, so a
    side-scroller following its player right reads dx > 0. The motion is the whole-pixel shift,
    up to `max_shift` pixels each way (a faster move reads wrong), that best carries `before` onto
    `after` over the pixels that changed (grey level by more than `changed_above`) and those
    within `near` pixels of them, refined by a parabola through the squared errors beside it.
    Only what changed is compared, so a backdrop that stays put while the level scrolls (CoinRun
    draws one) does not pin the reading to 0, as it does phase correlation over the whole frame;
    so too a sprite moving over a still scene reads as the camera move that would make it (the
    opposite of the sprite's). A pair reads 0 where under 0.1% of the pixels changed (still or
    featureless), and where no shift explains the change much better than most (its squared error
    not under half the median over shifts: a fade, a sprite appearing, a cut).
    """
    if before.shape != after.shape or before.ndim < 3:
        raise ValueError(
            f"frames must be (..., C, H, W) of one shape, got {tuple(before.shape)} and "
            f"{tuple(after.shape)}"
        )
    if max_shift < 1:
        raise ValueError(f"max_shift must be >= 1, got {max_shift}")
    pairs_before = before.reshape(-1, *before.shape[-3:])
    if len(pairs_before) > MOTION_PAIRS_AT_ONCE:  # in chunks: memory stays bounded
        pairs_after = after.reshape(-1, *after.shape[-3:])
        chunks = zip(
            pairs_before.split(MOTION_PAIRS_AT_ONCE),
            pairs_after.split(MOTION_PAIRS_AT_ONCE),
            strict=True,
        )
        motion = torch.cat([camera_motion(b, a, max_shift, changed_above, near) for b, a in chunks])
        return motion.reshape(*before.shape[:-3], 2)
    height, width = before.shape[-2:]
    grey_before = before.double().mean(dim=-3).reshape(-1, height, width)
    grey_after = after.double().mean(dim=-3).reshape(-1, height, width)
    if len(grey_before) == 0:
        return torch.zeros(*before.shape[:-3], 2, dtype=torch.float64)
    changed = (grey_after - grey_before).abs() > changed_above
    still = changed.sum(dim=(-2, -1)) < 0.001 * height * width
    # and the pixels around them: a sub-pixel move of a smooth texture changes little at each
    # pixel, and the edges alone would favour the shifts that match edges
    changed = F.max_pool2d(changed[:, None].double(), 2 * near + 1, 1, near)[:, 0] > 0
    r = max_shift
    size = (height + r, width + r)  # zero padding: no shift within r wraps around

    def spectrum(x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(x, s=size)

    def lags(product: torch.Tensor) -> torch.Tensor:
        """From conj(X) Y, sum over p of x(p) y(p + (dy, dx)) for every dy, dx in [-r, r]:
        (N, 2r+1, 2r+1). Sums of such products give sums of correlations (the FFT is linear)."""
        rows, cols = torch.arange(-r, r + 1) % size[0], torch.arange(-r, r + 1) % size[1]
        return torch.fft.irfft2(product, s=size)[:, rows][:, :, cols]

    # Squared error of `after` against `before` moved, over the changed pixels `before` covers,
    # for every shift at once: sum M (A - B)^2 = sum M A^2 - 2 sum M A B + sum M B^2.
    mask = changed.double()
    of_mask, of_ones = spectrum(mask).conj(), spectrum(torch.ones_like(grey_before))
    compared = lags(of_mask * of_ones).round()  # pixel counts
    squared = lags(
        spectrum(mask * grey_after**2).conj() * of_ones
        - 2 * spectrum(mask * grey_after).conj() * spectrum(grey_before)
        + of_mask * spectrum(grey_before**2)
    )
    errors = squared / compared.clamp_min(1)
    # a shift that carries most of what changed out of the frame explains nothing
    errors[compared < 0.5 * mask.sum(dim=(-2, -1))[:, None, None]] = float("inf")
    best = errors.flatten(1).argmin(dim=1)
    rows, cols = best // (2 * r + 1), best % (2 * r + 1)
    pairs = torch.arange(len(errors))
    # no motion explains the change when the best shift does little better than most shifts (a
    # fade, a sprite appearing, a cut): every shift compares unrelated pixels alike
    typical = errors.flatten(1).nan_to_num(posinf=float("nan")).nanmedian(dim=1).values
    unexplained = ~(errors.flatten(1)[pairs, best] < 0.5 * typical)

    def refined(index: torch.Tensor, take) -> torch.Tensor:
        """Sub-pixel minimum by a parabola through it and its two neighbours, inside the range."""
        interior = (index > 0) & (index < 2 * r)
        low, centre, high = (
            take(index.clamp(1, 2 * r - 1) - 1),
            take(index),
            take(index.clamp(1, 2 * r - 1) + 1),
        )
        curvature = low - 2 * centre + high
        fitted = interior & low.isfinite() & high.isfinite() & (curvature > 0)
        offset = torch.where(fitted, 0.5 * (low - high) / curvature, 0.0)
        return index.double() - r + offset.clamp(-0.5, 0.5)

    dy = refined(rows, lambda i: errors[pairs, i, cols])
    dx = refined(cols, lambda j: errors[pairs, rows, j])
    motion = torch.stack([dx, dy], dim=-1).masked_fill((still | unexplained)[:, None], 0.0)
    return motion.reshape(*before.shape[:-3], 2)


def motion_agreement(
    true_by_action: dict[int, tuple[float, float]],
    generated_by_action: dict[int, tuple[float, float]],
    at_least: float = 0.5,
) -> float | None:
    """Of the actions whose true frames move the camera (mean motion of at least `at_least`
    pixels a frame), the share whose rollouts move it the same way by at least half as much
    (the generated motion projected on the true direction); None when no action moves it.
    1.0: every moving action makes the world model move its way."""
    moving = {a: np.asarray(m, float) for a, m in true_by_action.items()}
    moving = {a: m for a, m in moving.items() if np.hypot(*m) >= at_least}
    if not moving:
        return None
    agree = []
    for action, true in moving.items():
        size = float(np.hypot(*true))
        along = float(np.dot(np.asarray(generated_by_action.get(action, (0.0, 0.0))), true)) / size
        agree.append(along >= 0.5 * size)
    return sum(agree) / len(agree)
