import math

import pytest
import torch

from condense.errors import ConfigError
from condense.matching import distance, layer_distance


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_ours_linear_rows_sum_one_minus_cosine():
    g_syn = t([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    g_real = t([[2.0, 0.0], [1.0, 0.0], [-3.0, -4.0]])
    # rows: parallel -> 0, orthogonal -> 1, opposite -> 2
    assert layer_distance(g_syn, g_real).item() == pytest.approx(3.0, abs=1e-5)


def test_ours_conv_reshaped_out_by_in_h_w():
    g_real = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    g_real[0, 0, 0, 0] = 1.0
    g_real[1, 0, 1, 1] = 1.0
    g_syn = g_real.clone()
    g_syn[1] = 0
    g_syn[1, 0, 0, 1] = 5.0  # orthogonal to the real row 1
    assert layer_distance(g_syn, g_real).item() == pytest.approx(1.0, abs=1e-5)


def test_ours_layernorm_3d_reshaped_c_by_hw():
    g_real = t([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]])  # C=2, 2x2
    g_syn = t([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]])
    expected = (1 - 1 / math.sqrt(2)) + 0.0
    assert layer_distance(g_syn, g_real).item() == pytest.approx(expected, abs=1e-5)


def test_ours_ignores_1d_tensors():
    assert layer_distance(t([1.0, 2.0]), t([-5.0, 3.0])).item() == 0.0
    total = distance([t([[1.0, 0.0]]), t([9.0])], [t([[0.0, 1.0]]), t([-9.0])], "ours")
    assert total.item() == pytest.approx(1.0, abs=1e-5)


def test_ours_denominator_epsilon():
    # zero gradients: 1 - 0 / (0 + 1e-6) = 1 per row, no NaN
    assert layer_distance(torch.zeros(3, 4), torch.zeros(3, 4)).item() == pytest.approx(3.0)


def test_mse_is_squared_euclidean_of_concatenation():
    g_syn = [t([[1.0, 2.0]]), t([3.0])]
    g_real = [t([[0.0, 0.0]]), t([1.0])]
    assert distance(g_syn, g_real, "mse").item() == pytest.approx(1 + 4 + 4)


def test_cos_is_one_minus_cosine_of_concatenation():
    g_syn = [t([[1.0, 0.0]]), t([0.0])]
    g_real = [t([[1.0, 0.0]]), t([1.0])]
    assert distance(g_syn, g_real, "cos").item() == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-5)


def test_distances_are_differentiable_in_the_synthetic_gradient():
    g_syn = torch.randn(4, 3, requires_grad=True)
    g_real = torch.randn(4, 3)
    for metric in ("ours", "mse", "cos"):
        (grad,) = torch.autograd.grad(distance([g_syn], [g_real], metric), g_syn)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_unknown_metric_names_the_value():
    with pytest.raises(ConfigError, match="l3"):
        distance([t([[1.0]])], [t([[1.0]])], "l3")
