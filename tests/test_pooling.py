"""Pooling modes against hand computations; padded positions must never influence the result."""

import math
import re

import pytest
import torch

from mtl_hf import POOLING_MODES
from mtl_hf.modeling.pooling import Pooler, pool

HUGE = 1e6

# Two rows, four positions, three features. Row 0 has 2 real tokens, row 1 has 4 (no padding).
REAL_0 = [[1.0, -2.0, 3.0], [3.0, -4.0, -5.0]]
REAL_1 = [[0.5, 1.0, -1.0], [-0.5, 2.0, -3.0], [1.5, -1.0, -2.0], [2.5, 0.0, -4.0]]


def make_states(pad_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    states = torch.tensor([REAL_0 + [[pad_value] * 3] * 2, REAL_1])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    return states, mask


def by_hand(rows: list[list[float]], mode: str) -> list[float]:
    """Plain-Python reference over the real tokens only."""
    columns = list(zip(*rows))
    if mode == "cls":
        return rows[0]
    if mode == "max":
        return [max(column) for column in columns]
    if mode == "mean":
        return [sum(column) / len(rows) for column in columns]
    if mode == "mean_sqrt_len":
        return [sum(column) / math.sqrt(len(rows)) for column in columns]
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", POOLING_MODES)
@pytest.mark.parametrize("pad_value", [HUGE, -HUGE, 0.0])
def test_pooling_matches_hand_computation_and_ignores_padding(mode, pad_value):
    states, mask = make_states(pad_value)
    expected = torch.tensor([by_hand(REAL_0, mode), by_hand(REAL_1, mode)])
    torch.testing.assert_close(pool(states, mask, mode), expected)
    torch.testing.assert_close(Pooler(mode)(states, mask), expected)


def test_hand_values_for_row_zero():
    """Spell out row 0 once, so the reference above cannot share a mistake with the code."""
    states, mask = make_states(HUGE)
    torch.testing.assert_close(pool(states, mask, "mean")[0], torch.tensor([2.0, -3.0, -1.0]))
    torch.testing.assert_close(pool(states, mask, "max")[0], torch.tensor([3.0, -2.0, 3.0]))
    torch.testing.assert_close(pool(states, mask, "cls")[0], torch.tensor([1.0, -2.0, 3.0]))
    torch.testing.assert_close(
        pool(states, mask, "mean_sqrt_len")[0], torch.tensor([4.0, -6.0, -2.0]) / math.sqrt(2.0)
    )


def test_max_pooling_with_all_negative_states_ignores_zero_padding():
    states = torch.tensor([[[-3.0, -1.0], [-2.0, -5.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(pool(states, mask, "max"), torch.tensor([[-2.0, -1.0]]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_max_pooling_in_half_precision(dtype):
    states, mask = make_states(HUGE)
    states = states.clamp(-100, 100).to(dtype)
    out = pool(states, mask, "max")
    assert out.dtype == dtype
    torch.testing.assert_close(out[0].float(), torch.tensor([3.0, -2.0, 3.0]))


def test_pooling_keeps_gradients_to_real_tokens_only():
    states, mask = make_states(0.0)
    states.requires_grad_(True)
    pool(states, mask, "mean").sum().backward()
    assert torch.all(states.grad[0, 2:] == 0)
    torch.testing.assert_close(states.grad[0, :2], torch.full((2, 3), 0.5))
    torch.testing.assert_close(states.grad[1], torch.full((4, 3), 0.25))


def test_unknown_pooling_mode_raises_listing_valid_modes():
    message = f"Unknown pooling mode 'median'. Valid pooling modes are: {POOLING_MODES}."
    with pytest.raises(ValueError, match=re.escape(message)):
        Pooler("median")
    states, mask = make_states(0.0)
    with pytest.raises(ValueError, match=re.escape(message)):
        pool(states, mask, "median")


def test_pooler_shows_its_mode():
    assert repr(Pooler("max")) == "Pooler(mode='max')"
