r"""The test bench and its inverse: the forward process model (condition and design -> noise-free bench
readings) and two inverse models (readings and design -> condition).

* **Forward process model** :func:`forward` — :func:`ppal_lab.data.bench_forward` itself, the documented
  model the data generator uses, so the two cannot disagree.
* **Inverse model**, two ways: :class:`GridInverse` (maximum likelihood: for each defect value the health
  in [0, 1] minimising the noise-weighted squared residual, by a vectorised grid search refined twice) and
  :class:`MLPInverse` (a small torch network trained on simulated (condition, readings) pairs; it learns
  the posterior mean under its training distribution instead).

The bench readings :math:`m` of an item are the four channels of :data:`ppal_lab.data.BENCH_COLUMNS`
(vibration, backlash, oil debris, temperature rise), each with Gaussian noise of SD :data:`BENCH_SD`.
:mod:`ppal_lab.verify.verifier` composes these models into the seed's three verification steps.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ppal_lab import data as D
from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real

__all__ = ["BENCH_SD", "INVERSE_METHODS", "GridInverse", "MLPInverse", "fit_inverse", "forward", "make_inverse"]

#: Noise standard deviation of each bench channel, in :data:`ppal_lab.data.BENCH_COLUMNS` order.
BENCH_SD = np.array([D.BENCH_NOISE_SD[c] for c in D.BENCH_COLUMNS])
BENCH_SD.flags.writeable = False
INVERSE_METHODS: tuple[str, ...] = ("grid", "mlp")

_N_VARIANTS, _N_TOLERANCES = 4, 3
_CHUNK = 2048  # items per block of the grid search (bounds memory: CHUNK x grid x 4 floats)


def _design(variant: Any, tolerance: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(variant)
    t = np.asarray(tolerance)
    for name, a, k in (("variant", v, _N_VARIANTS), ("tolerance", t, _N_TOLERANCES)):
        if a.shape != (n,) or not np.all(np.isfinite(a.astype(np.float64))) \
                or np.any(a != np.round(a)) or a.min() < 0 or a.max() > k - 1:
            raise ParameterError(name, f"array of shape {a.shape}", f"{n} integer codes in [0, {k - 1}]")
    return v.astype(np.int64), t.astype(np.int64)


def _readings(readings: Any) -> np.ndarray:
    try:
        m = np.asarray(readings, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError("readings", type(readings).__name__, "a numeric (n, 4) array") from None
    if m.ndim != 2 or m.shape[1] != len(D.BENCH_COLUMNS) or m.shape[0] == 0:
        raise ParameterError("readings", f"array of shape {m.shape}", "a non-empty (n, 4) array")
    if not np.all(np.isfinite(m)):
        raise ParameterError("readings", "an array with NaN or inf", "finite readings")
    return m


def _unit(name: str, value: Any, n: int, binary: bool = False) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape != (n,) or not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1 \
            or (binary and np.any((a != 0) & (a != 1))):
        raise ParameterError(name, f"array of shape {a.shape}",
                             f"{n} values {'in {0, 1}' if binary else 'in [0, 1]'}")
    return a


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny networks: one torch thread (thread start-up and contention cost more than they save)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------
# forward model
# ----------------------------------------------------------------------------------------------
def forward(health: Any, defect: Any, variant: Any, tolerance: Any) -> np.ndarray:
    """Noise-free bench readings of a condition: :func:`ppal_lab.data.bench_forward`, as an array.

    Arguments broadcast like NumPy arrays (so a grid of candidate healths per item is one call); the
    result has the broadcast shape plus a last axis of the four channels (:data:`BENCH_SD` order).
    Out-of-range arguments raise :class:`~ppal_lab.compendium.errors.ParameterError` (from ``bench_forward``).
    """
    shape = np.broadcast_shapes(*(np.shape(a) for a in (health, defect, variant, tolerance)))
    out = D.bench_forward(health, defect, variant, tolerance).to_numpy(dtype=np.float64, copy=True)
    return out.reshape(*shape, len(D.BENCH_COLUMNS))


def _residual(readings: np.ndarray, health: np.ndarray, defect: np.ndarray, v: np.ndarray,
              t: np.ndarray) -> np.ndarray:
    """Noise-weighted squared residual D^2 = sum_j ((m_j - F_j(c)) / sigma_j)^2 of each item."""
    return (((forward(health, defect, v, t) - readings) / BENCH_SD) ** 2).sum(axis=-1)


# ----------------------------------------------------------------------------------------------
# inverse models
# ----------------------------------------------------------------------------------------------
class GridInverse:
    r"""Maximum-likelihood inverse of the bench by a vectorised grid search.

    For defect :math:`d \in \{0, 1\}` and every item, the health :math:`h \in [0, 1]` minimising
    :math:`D^2 = \sum_j ((m_j - F_j(h, d)) / \sigma_j)^2` (the negative log-likelihood of Gaussian
    bench noise, up to constants) is found on a grid of ``n_grid`` points, then refined ``rounds``
    times on ``n_refine`` points spanning one step either side of the best point (resolution
    :math:`1/((n_\text{grid} - 1) (n_\text{refine} - 1)^{\text{rounds}} / 2^{\text{rounds}})`, 1e-4 at
    the defaults); the defect with the smaller residual wins. The search is one-dimensional per
    defect value, so the coarse grid can miss the global minimum only if the residual has a second,
    deeper minimum narrower than one grid step; on noise-free readings it recovers the condition to
    the resolution (tested).
    """

    method = "grid"

    def __init__(self, n_grid: int = 101, n_refine: int = 21, rounds: int = 2):
        self.n_grid = check_int("n_grid", n_grid, 3, 100_000)
        self.n_refine = check_int("n_refine", n_refine, 3, 10_000)
        self.rounds = check_int("rounds", rounds, 0, 10)

    @property
    def resolution(self) -> float:
        step = 1.0 / (self.n_grid - 1)
        for _ in range(self.rounds):
            step = 2.0 * step / (self.n_refine - 1)
        return step

    def invert(self, readings: Any, variant: Any, tolerance: Any
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(health, defect, residual D^2)`` of each item (defect is 0.0 or 1.0)."""
        m = _readings(readings)
        v, t = _design(variant, tolerance, m.shape[0])
        out = [self._invert(m[i:i + _CHUNK], v[i:i + _CHUNK], t[i:i + _CHUNK])
               for i in range(0, m.shape[0], _CHUNK)]
        return tuple(np.concatenate(parts) for parts in zip(*out))  # type: ignore[return-value]

    def _invert(self, m, v, t):
        n = m.shape[0]
        rows = np.arange(n)
        best_h, best_d, best_r = np.zeros(n), np.zeros(n), np.full(n, np.inf)
        for d in (0.0, 1.0):
            H = np.broadcast_to(np.linspace(0.0, 1.0, self.n_grid), (n, self.n_grid))
            step = 1.0 / (self.n_grid - 1)
            for r in range(self.rounds + 1):
                res = _residual(m[:, None, :], H, d, v[:, None], t[:, None])
                i = res.argmin(axis=1)
                h, rmin = H[rows, i], res[rows, i]
                if r < self.rounds:
                    H = np.clip(h[:, None] + np.linspace(-step, step, self.n_refine)[None], 0.0, 1.0)
                    step = 2.0 * step / (self.n_refine - 1)
            better = rmin < best_r
            best_h[better], best_d[better], best_r[better] = h[better], d, rmin[better]
        return best_h, best_d, best_r


class MLPInverse:
    """A small torch network readings + design -> (health, defect), learned from simulated pairs.

    :meth:`fit` takes the conditions and designs of trusted calibration items, simulates
    ``n_draws`` noisy bench readings of each with :func:`ppal_lab.data.bench_forward`, and trains a
    2-hidden-layer tanh network (inputs: standardised readings and one-hot design; outputs: health
    through a sigmoid, trained with squared error, and a defect logit, trained with cross-entropy)
    with Adam. It estimates the posterior mean under the calibration distribution of conditions
    rather than the maximum-likelihood condition, so it is more accurate on typical items and less
    faithful to the physics at the edges (the notebook measures both).
    """

    method = "mlp"

    def __init__(self, hidden: int = 64, epochs: int = 30, lr: float = 3e-3, batch_size: int = 256,
                 n_draws: int = 3, seed: int = 0):
        self.hidden = check_int("hidden", hidden, 1, 4096)
        self.epochs = check_int("epochs", epochs, 1, 10_000)
        self.lr = check_real("lr", lr, 0.0, 10.0, low_open=True)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.n_draws = check_int("n_draws", n_draws, 1, 100)
        self.seed = check_int("seed", seed, 0)
        self.net: nn.Module | None = None
        self._center = self._scale = None

    def _inputs(self, m: np.ndarray, v: np.ndarray, t: np.ndarray) -> torch.Tensor:
        onehot = np.zeros((m.shape[0], _N_VARIANTS + _N_TOLERANCES))
        onehot[np.arange(m.shape[0]), v] = 1.0
        onehot[np.arange(m.shape[0]), _N_VARIANTS + t] = 1.0
        return torch.as_tensor(np.column_stack([(m - self._center) / self._scale, onehot]),
                               dtype=torch.float32)

    def fit(self, health: Any, defect: Any, variant: Any, tolerance: Any) -> MLPInverse:
        """Train on simulated readings of the given conditions; returns ``self``."""
        h = np.asarray(health, dtype=np.float64)
        n = h.shape[0] if h.ndim == 1 else 0
        if n < 10:
            raise ParameterError("health", f"array of shape {h.shape}", "at least 10 conditions")
        h = _unit("health", h, n)
        d = _unit("defect", defect, n, binary=True)
        v, t = _design(variant, tolerance, n)
        rng = np.random.default_rng([self.seed, 0x1A7])
        H, Dd, V, T = (np.tile(a, self.n_draws) for a in (h, d, v, t))
        M = D.bench_forward(H, Dd, V, T, rng=rng).to_numpy()
        self._center, self._scale = M.mean(axis=0), M.std(axis=0)
        X = self._inputs(M, V, T)
        yh = torch.as_tensor(H, dtype=torch.float32)
        yd = torch.as_tensor(Dd, dtype=torch.float32)
        with _one_thread(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = nn.Sequential(nn.Linear(X.shape[1], self.hidden), nn.Tanh(),
                                nn.Linear(self.hidden, self.hidden), nn.Tanh(),
                                nn.Linear(self.hidden, 2))
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            bce = nn.BCEWithLogitsLoss()
            for _ in range(self.epochs):
                perm = torch.randperm(X.shape[0])
                for i in range(0, X.shape[0], self.batch_size):
                    idx = perm[i:i + self.batch_size]
                    out = net(X[idx])
                    # health error weighted so that both terms are of order 1 at the start
                    loss = 20.0 * ((torch.sigmoid(out[:, 0]) - yh[idx]) ** 2).mean() \
                        + bce(out[:, 1], yd[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        self.net = net.eval()
        return self

    def invert(self, readings: Any, variant: Any, tolerance: Any
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(health, defect, residual D^2)``; defect is the network's decision (0.0/1.0)."""
        if self.net is None:
            raise RuntimeError("MLPInverse.invert called before fit")
        m = _readings(readings)
        v, t = _design(variant, tolerance, m.shape[0])
        with _one_thread(), torch.no_grad():
            out = self.net(self._inputs(m, v, t)).double().numpy()
        h = np.clip(1.0 / (1.0 + np.exp(-out[:, 0])), 0.0, 1.0)
        d = (out[:, 1] > 0).astype(np.float64)
        return h, d, _residual(m, h, d, v, t)


def make_inverse(method: str, seed: int = 0) -> GridInverse | MLPInverse:
    """An unfitted inverse model by name (``"grid"`` needs no fitting)."""
    check_choice("inverse", method, INVERSE_METHODS)
    return GridInverse() if method == "grid" else MLPInverse(seed=seed)


def fit_inverse(method: str, data: D.SupplyChainData, seed: int = 0) -> GridInverse | MLPInverse:
    """An inverse model ready to use: the grid search, or a network trained on the latent conditions and
    designs of ``data`` (remanufacturing items; their bench physics only, no labels) with ``seed``.

    Two calls with different ``data`` or ``seed`` give independent networks: an honest claimant's model
    that the verifier does not share."""
    model = make_inverse(method, check_int("seed", seed, 0))
    if isinstance(model, MLPInverse):
        if not isinstance(data, D.SupplyChainData) or data.latent is None:
            raise ParameterError("data", type(data).__name__, "remanufacturing data from make_remanufacturing")
        model.fit(data.latent["health"].to_numpy(), data.latent["defect"].to_numpy(dtype=np.float64),
                  data.X["design_variant"].to_numpy().astype(np.int64),
                  data.X["tolerance_class"].to_numpy().astype(np.int64))
    return model
