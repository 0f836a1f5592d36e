"""ST-transformer: causal temporal mask, cache equivalence, the full-attention variant."""

import pytest
import torch

from models.st_transformer import STTransformer, TemporalKVCache


def make(attention: str = "st") -> STTransformer:
    torch.manual_seed(0)
    return STTransformer(
        dim=32, num_layers=2, num_heads=4, tokens_per_frame=6, attention=attention
    ).eval()


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
