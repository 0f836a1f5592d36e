"""MaskGIT sampler and play Session: cache equivalence, the fast path's equality with the
model's forward, action sensitivity, schedule, confident early stop."""

import dataclasses

import pytest
import torch

from models.configs import get_preset
from models.dynamics import DynamicsModel, actions_per_frame, previous_frames
from models.maskgit import Session, maskgit_fill, sample


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


def test_next_frame_gives_exactly_the_cached_forward_round_after_round():
    """The play fast path (`DynamicsModel.next_frame`, `FrameAfterCache`) against the model's
    own forward with the cache: the same logits bit for bit, and the same cache after commit,
    also once the window slides."""
    model = dynamics()
    cfg = model.config
    history = prompt(3)
    actions = torch.tensor([[1, 6], [0, 3]])
    fast_cache, reference_cache = model.new_cache(), model.new_cache()
    with torch.no_grad():
        for cache in (fast_cache, reference_cache):
            model(history, actions_per_frame(actions, 8), previous_frames(history, 256), cache,
                  commit=True)  # fmt: skip
        generator = torch.Generator().manual_seed(5)
        for frame in range(8):  # 3 + 8 frames: past the context of 8
            for cache in (fast_cache, reference_cache):
                cache.keep_last(cfg.context_frames - 1)
            last, action = history[:, -1:], torch.tensor([[frame % 8], [(frame + 3) % 8]])
            next_frame = model.next_frame(fast_cache, last, action)
            for _ in range(3):  # MaskGIT rounds: partly masked frames
                tokens = torch.randint(0, 257, last.shape, generator=generator)
                expected = model(tokens, action, last, reference_cache)
                assert torch.equal(next_frame.logits(tokens), expected)
            final = torch.randint(0, 256, last.shape, generator=generator)
            next_frame.commit(final)
            model(final, action, last, reference_cache, commit=True)
            assert fast_cache.num_frames == reference_cache.num_frames
            for fast, reference in zip(fast_cache.layers, reference_cache.layers, strict=True):
                assert torch.equal(fast[0], reference[0]) and torch.equal(fast[1], reference[1])
            history = torch.cat([history, final], dim=1)
        with pytest.raises(RuntimeError, match="committed"):
            next_frame.logits(final)


def test_sample_draws_each_code_as_often_as_its_probability():
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).expand(40_000, 4)
    drawn = sample(probs, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(drawn, minlength=4).float() / len(drawn)
    assert torch.allclose(frequencies, probs[0], atol=0.01) and frequencies[1] == 0


def test_confident_samples_are_kept_at_once_and_the_frame_ends_early():
    vocab, tokens = 10, 30
    sure = torch.full((1, tokens, vocab), -20.0)
    sure[:, :, 3] = 0.0  # every token: code 3 with probability ~1
    sure[:, :4] = 0.0  # but the first 4 are a toss-up
    rounds = []

    def logits_for(current):
        rounds.append(int((current == vocab).sum()))
        return sure

    def fill(confident):
        rounds.clear()
        generator = torch.Generator().manual_seed(0)
        return maskgit_fill(logits_for, 1, tokens, vocab, steps=8, generator=generator,
                            confident=confident)  # fmt: skip

    filled = fill(0.9)
    assert (filled[:, 4:] == 3).all() and (filled < vocab).all()
    assert rounds[:2] == [tokens, 4] and len(rounds) < 8  # the 26 sure ones kept in round 1
    assert len(fill(None)) == 1 and len(rounds) == 8  # the schedule alone: every round
    assert torch.equal(fill(1.0), fill(None))  # nothing is more probable than 1
