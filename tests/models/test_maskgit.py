"""MaskGIT sampler and play Session: cache equivalence, action sensitivity, schedule."""

import dataclasses

import pytest
import torch

from models.configs import get_preset
from models.dynamics import DynamicsModel
from models.maskgit import Session, maskgit_fill


def dynamics() -> DynamicsModel:
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        get_preset("tiny").dynamics, grid_height=4, grid_width=5, context_frames=8
    )
    return DynamicsModel(cfg).eval()


def prompt(frames: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (2, frames, 4, 5), generator=torch.Generator().manual_seed(1))


def rollout(model, use_cache: bool, actions, seed: int = 3) -> torch.Tensor:
    session = Session(model, prompt(), steps=8, temperature=1.5, seed=seed, use_cache=use_cache)
    return torch.stack([session.step(a) for a in actions], dim=1)


def test_cached_and_uncached_sampling_give_identical_tokens():
    model = dynamics()
    actions = [1, 4, 0, 7, 2]
    cached, uncached = rollout(model, True, actions), rollout(model, False, actions)
    assert cached.shape == (2, 5, 4, 5)
    assert torch.equal(cached, uncached)
    assert (cached < 256).all()  # no mask token left


def test_different_actions_from_the_same_prompt_give_different_frames():
    model = dynamics()
    frames = [rollout(model, True, [action]) for action in range(8)]
    distinct = {tuple(f.flatten().tolist()) for f in frames}
    assert len(distinct) == 8


def test_sliding_window_keeps_sampling_past_the_context():
    model = dynamics()
    session = Session(model, prompt(), steps=4, seed=0)
    for step in range(10):
        session.step(step % 8)
    assert session.tokens.shape == (2, 12, 4, 5)
    assert session.cache.cached_frames == 8


def test_fill_schedule_unmasks_everything_and_is_seeded():
    vocab, tokens = 10, 30
    calls = []

    def logits_for(current):
        calls.append(int((current == vocab).sum()))
        return torch.zeros(current.shape[0], tokens, vocab)

    a = maskgit_fill(
        logits_for, 1, tokens, vocab, steps=6, generator=torch.Generator().manual_seed(0)
    )
    b = maskgit_fill(
        logits_for, 1, tokens, vocab, steps=6, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(a, b) and (a < vocab).all()
    assert calls[:6] == sorted(calls[:6], reverse=True) and calls[0] == tokens


def test_bad_action_is_refused():
    session = Session(dynamics(), prompt(), steps=2)
    with pytest.raises(ValueError, match="action must be in"):
        session.step(8)
