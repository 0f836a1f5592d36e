"""ST-transformer: causal temporal mask, cache equivalence, the full-attention variant, 2D rotary
positions in spatial attention."""

import pytest
import torch

from models.st_transformer import (
    STTransformer,
    TemporalKVCache,
    apply_rotary,
    grid_rotary_tables,
)


def make(attention: str = "st") -> STTransformer:
    torch.manual_seed(0)
    return STTransformer(
        dim=32, num_layers=2, num_heads=4, tokens_per_frame=6, attention=attention, grid=(2, 3)
    ).eval()


def test_grid_rotary_scores_depend_only_on_the_offset_between_tokens():
    """What lets one head fetch "the token to my right" at every position of a frame."""
    torch.manual_seed(0)
    rows, cols, head_dim = 3, 5, 8
    cos, sin = grid_rotary_tables(rows, cols, head_dim)
    q, k = torch.randn(head_dim), torch.randn(head_dim)
    scores = (
        apply_rotary(q.expand(rows * cols, -1), cos, sin)
        @ apply_rotary(k.expand(rows * cols, -1), cos, sin).T
    )
    scores = scores.view(rows, cols, rows, cols)
    right = torch.stack([scores[r, c, r, c + 1] for r in range(rows) for c in range(cols - 1)])
    below = torch.stack([scores[r, c, r + 1, c] for r in range(rows - 1) for c in range(cols)])
    torch.testing.assert_close(right, right[:1].expand_as(right))
    torch.testing.assert_close(below, below[:1].expand_as(below))
    assert not torch.allclose(right[0], below[0])  # rows and columns are told apart
    assert not torch.allclose(right[0], scores[0, 1, 0, 0])  # and right from left


def test_grid_must_match_the_tokens_per_frame():
    with pytest.raises(ValueError, match="grid"):
        STTransformer(dim=32, num_layers=1, num_heads=4, tokens_per_frame=6, grid=(2, 2))


@pytest.mark.parametrize("attention", ["st", "full"])
def test_perturbing_later_frames_changes_nothing_before(attention):
    model = make(attention)
    x = torch.randn(2, 5, 6, 32)
    changed = x.clone()
    changed[:, 3:] += torch.randn_like(changed[:, 3:])
    out, out_changed = model(x), model(changed)
    torch.testing.assert_close(out[:, :3], out_changed[:, :3])
    assert not torch.allclose(out[:, 3:], out_changed[:, 3:])


def test_spatial_attention_mixes_tokens_within_a_frame():
    model = make()
    x = torch.randn(1, 3, 6, 32)
    changed = x.clone()
    changed[:, 1, 0] += 1.0
    diff = (model(x) - model(changed)).abs().amax(dim=-1)
    assert diff[0, 0].max() == 0  # earlier frame untouched
    assert (diff[0, 1] > 0).all()  # every token of the frame saw the change


def test_cached_frames_match_full_forward():
    model = make()
    x = torch.randn(2, 5, 6, 32)
    full = model(x)
    cache = TemporalKVCache(num_layers=2)
    first = model(x[:, :2], cache, commit=True)
    rest = [model(x[:, t : t + 1], cache, commit=True) for t in range(2, 5)]
    torch.testing.assert_close(torch.cat([first, *rest], dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.num_frames == 5 and cache.cached_frames == 5


def test_uncommitted_frames_leave_the_cache_alone():
    model = make()
    x = torch.randn(1, 3, 6, 32)
    cache = TemporalKVCache(num_layers=2)
    model(x[:, :2], cache, commit=True)
    probe = model(x[:, 2:], cache)
    assert cache.num_frames == 2
    torch.testing.assert_close(probe, model(x[:, 2:], cache))


def test_full_variant_has_the_same_parameters():
    st, full = make("st"), make("full")
    assert [p.shape for p in st.parameters()] == [p.shape for p in full.parameters()]
    full.load_state_dict(st.state_dict())


def test_bf16_autocast_keeps_norm_outputs_finite():
    model = make()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 6, 32))
    assert torch.isfinite(out.float()).all()
