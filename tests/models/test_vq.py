"""The vector quantizer's codebook follows the data (moving average) and revives dead codes."""

import torch

from models.vq import VectorQuantizer


def clustered_latents(centres: torch.Tensor, per_centre: int, generator: torch.Generator):
    noise = 0.01 * torch.randn(len(centres), per_centre, centres.shape[1], generator=generator)
    return (centres[:, None] + noise).reshape(-1, centres.shape[1])


def test_codebook_reaches_the_data_in_tens_of_steps_without_gradients():
    """A gradient-trained codebook at lr 1e-3 would move ~0.05 in 50 steps; these centres sit
    ~3 away from every initial code. The moving average gets there without an optimizer."""
    generator = torch.Generator().manual_seed(0)
    centres = 3.0 * torch.randn(4, 8, generator=generator)
    quantizer = VectorQuantizer(num_codes=16, code_dim=8, decay=0.9, dead_code_patience=5)
    quantizer.train()
    for _ in range(50):
        quantizer(clustered_latents(centres, 64, generator))
    distance = torch.cdist(centres, quantizer.codebook).min(dim=1).values
    assert distance.max() < 0.05, distance
    quantizer.eval()
    out = quantizer(clustered_latents(centres, 8, generator))
    assert (out.quantized - clustered_latents(centres, 8, generator)).abs().max() < 0.2
    per_centre = [set(row.tolist()) for row in out.codes.view(4, 8)]
    assert all(a.isdisjoint(b) for i, a in enumerate(per_centre) for b in per_centre[i + 1 :])


def test_eval_mode_leaves_the_codebook_alone():
    generator = torch.Generator().manual_seed(1)
    quantizer = VectorQuantizer(num_codes=8, code_dim=4).eval()
    before = quantizer.codebook.clone()
    quantizer(torch.randn(32, 4, generator=generator))
    assert torch.equal(before, quantizer.codebook)


def test_straight_through_gradient_reaches_the_encoder_with_the_commitment_loss():
    quantizer = VectorQuantizer(num_codes=8, code_dim=4)
    latents = torch.randn(16, 4, requires_grad=True)
    out = quantizer(latents)
    (out.quantized.sum() + out.loss).backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in quantizer.parameters())  # codebook is a buffer


def test_nearest_codes_are_the_nearest_by_brute_force_also_under_bf16_autocast():
    generator = torch.Generator().manual_seed(2)
    quantizer = VectorQuantizer(num_codes=1024, code_dim=16).eval()
    latents = 4.0 + torch.randn(4000, 16, generator=generator)  # far from 0: |x|^2 is large
    nearest = torch.cdist(latents.double(), quantizer.codebook.double()).argmin(dim=1)
    assert torch.equal(quantizer.nearest_codes(latents), nearest)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(quantizer.nearest_codes(latents), nearest)
