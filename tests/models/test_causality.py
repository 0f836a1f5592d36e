"""Causality and the action off-by-one: action[t] (transition t -> t+1) conditions frame t+1."""

import dataclasses

import pytest
import torch

from models.configs import get_preset
from models.dynamics import NEIGHBOURS, DynamicsModel, actions_per_frame, previous_frames
from models.lam import LatentActionModel, motions
from models.tokenizer import VideoTokenizer

TINY = get_preset("tiny")
SMALL_FRAMES = {"frame_height": 30, "frame_width": 48}  # not a multiple of the patch: padding runs


def frames(t: int = 4) -> torch.Tensor:
    return torch.rand(2, t, 3, 30, 48, generator=torch.Generator().manual_seed(0))


def test_tokenizer_encoder_is_causal_and_shapes_are_padded_then_cropped():
    torch.manual_seed(0)
    model = VideoTokenizer(dataclasses.replace(TINY.tokenizer, **SMALL_FRAMES)).eval()
    x = frames()
    latents = model._latents(x)
    changed = x.clone()
    changed[:, 2:] = torch.rand_like(changed[:, 2:])
    torch.testing.assert_close(model._latents(changed)[:, :2], latents[:, :2])
    codes = model.encode(x)
    assert codes.shape == (2, 4, 4, 6) and codes.dtype == torch.long
    assert model.decode(codes).shape == x.shape


@pytest.mark.parametrize("patch, grid", [(4, (23, 40)), (8, (12, 20))])
def test_tokenizer_at_160x90_gives_a_token_per_patch_and_decodes_back_to_160x90(patch, grid):
    torch.manual_seed(0)
    model = VideoTokenizer(dataclasses.replace(TINY.tokenizer, patch_size=patch)).eval()
    x = torch.rand(1, 2, 3, 90, 160)
    codes = model.encode(x)
    assert codes.shape == (1, 2, *grid)
    assert model.decode(codes).shape == (1, 2, 3, 90, 160)


def lam() -> LatentActionModel:
    torch.manual_seed(0)
    model = LatentActionModel(dataclasses.replace(TINY.lam, **SMALL_FRAMES)).eval()
    torch.nn.init.normal_(
        model.to_pixels[1].weight, std=0.02
    )  # zero at init would hide the decoder
    return model


def test_lam_action_t_depends_on_frames_up_to_t_plus_1_only():
    model = lam()
    x = frames(5)
    latent = model.encode(x)
    assert latent.shape[:2] == (2, 4)
    changed = x.clone()
    changed[:, 3] = torch.rand_like(changed[:, 3])  # frame 3 enters a_2 (2 -> 3) and later
    latent_changed = model.encode(changed)
    torch.testing.assert_close(latent_changed[:, :2], latent[:, :2])
    assert not torch.allclose(latent_changed[:, 2], latent[:, 2])


def test_lam_decoder_action_t_conditions_frame_t_plus_1():
    model = lam()
    x = frames(5)
    actions = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    prediction = model.predict_with_actions(x[:, :-1], actions)  # predicts frames 1..4
    changed = actions.clone()
    changed[:, 2] = (changed[:, 2] + 1) % model.config.num_actions  # transition 2 -> 3
    prediction_changed = model.predict_with_actions(x[:, :-1], changed)
    torch.testing.assert_close(prediction_changed[:, :2], prediction[:, :2])  # frames 1, 2
    assert not torch.allclose(prediction_changed[:, 2], prediction[:, 2])  # frame 3


def test_lam_decoder_is_causal():
    model = lam()
    x = frames(5)
    actions = torch.zeros(2, 4, dtype=torch.long)
    changed = x.clone()
    changed[:, 2] = torch.rand_like(changed[:, 2])
    a, b = (
        model.predict_with_actions(x[:, :-1], actions),
        model.predict_with_actions(changed[:, :-1], actions),
    )
    torch.testing.assert_close(a[:, :2], b[:, :2])


def test_lam_decoder_moves_a_patch_by_the_motion_it_weighs_most():
    """The decoder draws a scroll by moving frame t: one step right means content at x shows up
    at x + displacement in the prediction of frame t+1."""
    model = lam()
    step = model.config.displacements[0]
    torch.nn.init.zeros_(model.to_pixels[1].weight)
    torch.nn.init.zeros_(model.to_pixels[1].bias)
    with torch.no_grad():
        model.to_motion[1].bias.copy_(
            torch.tensor([100.0 if m == (0, step) else 0.0 for m in motions((step,))])
        )
    x = frames(2)
    prediction = model.predict_with_actions(x[:, :1], torch.zeros(2, 1, dtype=torch.long))
    torch.testing.assert_close(prediction[..., step:], x[:, :1, ..., :-step])
    torch.testing.assert_close(
        prediction[..., :step], x[:, :1, ..., :1].expand_as(prediction[..., :step])
    )


def dynamics() -> DynamicsModel:
    torch.manual_seed(0)
    return DynamicsModel(dataclasses.replace(TINY.dynamics, grid_height=3, grid_width=4)).eval()


def test_actions_per_frame_puts_no_action_first():
    per_frame = actions_per_frame(torch.tensor([[5, 6, 7]]), num_actions=8)
    assert per_frame.tolist() == [[8, 5, 6, 7]]


def test_dynamics_action_t_conditions_frame_t_plus_1_and_nothing_earlier():
    model = dynamics()
    tokens = torch.randint(0, 256, (2, 5, 3, 4), generator=torch.Generator().manual_seed(0))
    actions = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    previous = previous_frames(tokens, 256)
    logits = model(tokens, actions_per_frame(actions, 8), previous)
    changed = actions.clone()
    changed[:, 1] = (changed[:, 1] + 1) % 8  # transition 1 -> 2
    logits_changed = model(tokens, actions_per_frame(changed, 8), previous)
    torch.testing.assert_close(logits_changed[:, :2], logits[:, :2])  # frames 0, 1
    assert not torch.allclose(logits_changed[:, 2], logits[:, 2])  # frame 2


def test_dynamics_is_causal_in_time():
    model = dynamics()
    tokens = torch.randint(0, 256, (2, 5, 3, 4), generator=torch.Generator().manual_seed(0))
    per_frame = actions_per_frame(torch.zeros(2, 4, dtype=torch.long), 8)
    changed = tokens.clone()
    changed[:, 3:] = 256  # mask later frames
    torch.testing.assert_close(
        model(changed, per_frame, previous_frames(changed, 256))[:, :3],
        model(tokens, per_frame, previous_frames(tokens, 256))[:, :3],
    )


def test_dynamics_loss_never_masks_the_first_frame():
    model = dynamics()
    tokens = torch.randint(0, 256, (2, 3, 3, 4))
    seen = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    model.masked_token_loss(
        tokens, torch.zeros(2, 2, dtype=torch.long), torch.Generator().manual_seed(0)
    )
    inputs = seen[0]
    assert torch.equal(inputs[:, 0], tokens[:, 0])
    masked_share = (inputs[:, 1:] == 256).float().mean()
    assert 0.4 < masked_share <= 1.0


def test_dynamics_can_copy_the_token_one_column_over_from_the_frame_before():
    """A one-token scroll is a copy from the next column of the frame before: with its choice
    head set to that neighbour, the model predicts exactly that (edge column repeated)."""
    model = dynamics()
    torch.nn.init.zeros_(model.to_choice.weight)
    with torch.no_grad():
        model.to_choice.bias.copy_(
            torch.tensor([30.0 if n == (0, 1) else 0.0 for n in NEIGHBOURS] + [0.0])
        )
    cfg = model.config
    tokens = torch.randint(
        0, cfg.num_codes, (2, 2, 3, 4), generator=torch.Generator().manual_seed(0)
    )
    masked = tokens.clone()
    masked[:, 1] = cfg.mask_token
    logits = model(
        masked, actions_per_frame(torch.zeros(2, 1, dtype=torch.long), cfg.num_actions),
        previous_frames(tokens, cfg.mask_token),
    )  # fmt: skip
    torch.testing.assert_close(logits[:, 1].argmax(-1), tokens[:, 0][..., [1, 2, 3, 3]])
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(2, 2, 3, 4))  # probabilities
