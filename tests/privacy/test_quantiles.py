"""The exponential-mechanism DP quantile against its definition (the output density ratio on neighbouring
data is within e^epsilon, and a control breaks a smaller bound) and against the exact quantile."""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.privacy.quantiles import dp_quantile, dp_quantile_distribution, rank_error

def _density(edges, prob, points):
    """The mechanism's output density at ``points`` (uniform inside each picked interval)."""
    i = np.clip(np.searchsorted(edges, points, side="right") - 1, 0, len(prob) - 1)
    width = np.diff(edges)[i]
    return np.where(width > 0, prob[i] / np.where(width > 0, width, 1), 0.0)


@pytest.mark.parametrize("q, eps", [(0.05, 0.5), (0.5, 1.0), (0.95, 3.0)])
def test_dp_quantile_density_ratio_is_within_e_to_the_epsilon_on_neighbouring_data(q, eps):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 40)
    for changed in (0, 17, 39):  # replace one record by a value elsewhere in the domain
        y = x.copy()
        y[changed] = rng.uniform(0, 10)
        ex, px = dp_quantile_distribution(x, q, eps, (0, 10))
        ey, py = dp_quantile_distribution(y, q, eps, (0, 10))
        assert px.sum() == pytest.approx(1) and py.sum() == pytest.approx(1)
        grid = np.linspace(0.001, 9.999, 20_011)
        fx, fy = _density(ex, px, grid), _density(ey, py, grid)
        both = (fx > 0) & (fy > 0)
        assert both.mean() > 0.99  # the support is the whole domain (up to the data points themselves)
        assert np.max(np.abs(np.log(fx[both] / fy[both]))) <= eps + 1e-9


def test_control_a_tenfold_epsilon_breaks_the_smaller_bound():
    x = np.random.default_rng(2).uniform(0, 10, 40)
    y = x.copy()
    y[np.argmin(x)] = 9.99  # move the smallest value to the top: every rank below it shifts
    ex, px = dp_quantile_distribution(x, 0.05, 10.0, (0, 10))
    ey, py = dp_quantile_distribution(y, 0.05, 10.0, (0, 10))
    grid = np.linspace(0.001, 9.999, 20_011)
    fx, fy = _density(ex, px, grid), _density(ey, py, grid)
    both = (fx > 0) & (fy > 0)
    assert np.max(np.abs(np.log(fx[both] / fy[both]))) > 1.0


@pytest.mark.parametrize("q", [0.05, 0.5, 0.95])
def test_dp_quantile_on_large_data_is_close_to_the_exact_quantile(q):
    rng = np.random.default_rng(3)
    x = rng.normal(size=100_000)
    released = [dp_quantile(x, q, 1.0, (-10, 10), rng) for _ in range(5)]
    exact = np.quantile(x, q)
    assert max(abs(r - exact) for r in released) < 0.01
    assert max(rank_error(x, r, q) for r in released) < 0.001


def test_rank_error_is_zero_for_a_true_quantile_and_counts_ties():
    x = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 7], dtype=float)
    assert rank_error(x, 0.0, 0.2) == 0.0          # 0 to 30% of the data are at or below 0
    assert rank_error(x, 0.5, 0.2) == pytest.approx(0.1)
    assert rank_error(x, 7.0, 0.95) == 0.0
    with pytest.raises(ParameterError):
        dp_quantile_distribution(x, 0.5, 0.0, (0, 1))
    with pytest.raises(ParameterError):
        dp_quantile_distribution(x, 0.5, 1.0, (1, 1))
