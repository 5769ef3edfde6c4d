r"""Simulated bifurcation: ballistic (bSB) and discrete (dSB), for any QUBO or Ising model.

:func:`simulated_bifurcation` — ballistic (bSB) and discrete (dSB) simulated bifurcation (Goto et
al., Sci. Adv. 2019 and 2021): each spin is a particle with position :math:`x_i` and momentum
:math:`y_i`; a symplectic Euler step updates
:math:`y_i \mathrel{+}= \Delta t\,[-(a_0 - a(t)) x_i + c_0 (\sum_j \tilde J_{ij} \phi(x_j) + b_i)]` then
:math:`x_i \mathrel{+}= \Delta t\, a_0 y_i`, with :math:`\phi(x) = x` (bSB) or :math:`\operatorname{sign}(x)`
(dSB), a pump :math:`a(t)` that rises linearly from 0 to :math:`a_0 = 1` over the first ``ramp``
fraction of the steps and then holds (as the ``simulated-bifurcation`` package does), and inelastic
walls at :math:`|x_i| = 1` (position clipped, momentum zeroed). :math:`c_0 = 0.5 / (\sigma_J \sqrt{N})`
with :math:`\sigma_J` the root-mean-square coupling; the linear field enters the force as
:math:`c_0 b_i`. A "select k" penalty adds one stiff mode (all spins moving together) whose frequency
grows like :math:`n^{1/4}`; the default step is therefore :math:`\Delta t = 0.5 / \sqrt{a_0 + \rho}`
with :math:`\rho` the spectral radius of :math:`c_0 \tilde J` (a quarter of the explicit
integrator's stability limit). Many agents run at once as one matrix product per step in torch;
once the pump has reached :math:`a_0`, an agent stops early when all its positions sit at the walls
and its spins have not changed for ``patience`` checks.

"SB + swap" (:func:`ppal_lab.optimize.local_search.swap_polish` on every agent's output) is the solver
the feature-selection chapter uses. Runs are reproducible by seed; the number of torch threads can be
pinned for one call (``num_threads``) and is restored afterwards.

Every public function validates its arguments before any work and raises
:class:`~ppal_lab.compendium.errors.ParameterError` naming the parameter, the value and the allowed range.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ppal_lab.compendium.errors import ParameterError, check_choice, check_int, check_real
from ppal_lab.optimize.qubo import QUBO, Ising, MRMRProblem, _as_qubo

__all__ = ["SBResult", "SB_MODES", "simulated_bifurcation"]

#: Simulated-bifurcation variants: ``"ballistic"`` (bSB) and ``"discrete"`` (dSB).
SB_MODES = ("ballistic", "discrete")


@dataclass(frozen=True, eq=False)
class SBResult:
    """Outcome of :func:`simulated_bifurcation`."""

    x: np.ndarray            #: best 0/1 vector found (int8)
    energy: float            #: its energy (float64)
    samples: np.ndarray      #: every agent's final 0/1 vector, shape (n_agents, n)
    energies: np.ndarray     #: every agent's energy
    steps: int               #: integration steps run (the last agent's)
    stopped_early: int       #: agents stopped by the stability criterion
    wall_time_s: float
    mode: str
    dt: float                #: time step used


class _torch_threads:
    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.saved = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)



def simulated_bifurcation(problem: QUBO | Ising | MRMRProblem, mode: str = "ballistic", *,
                          n_agents: int = 32, max_steps: int = 1000, dt: float | None = None,
                          ramp: float = 0.7, seed: int = 0,
                          early_stopping: bool = True, check_every: int = 10, patience: int = 5,
                          dtype: str = "float32", num_threads: int | None = None) -> SBResult:
    """Minimise a QUBO with ballistic or discrete simulated bifurcation (Goto et al. 2019, 2021).

    Parameters
    ----------
    problem : QUBO, Ising or MRMRProblem
        What to minimise (an MRMRProblem's penalised QUBO).
    mode : {"ballistic", "discrete"}, default "ballistic"
        bSB (the positions themselves in the coupling term, the better variant on mRMR problems here)
        or dSB (their signs).
    n_agents : int, default 32
        Independent trajectories run together (one matrix product per step), >= 1.
    max_steps : int, default 1000
        Integration steps, >= 1.
    dt : float, optional
        Time step of the symplectic Euler integrator, in (0, 2], capped at 90% of the stability limit
        ``2 / sqrt(1 + rho)``. Default: ``0.5 / sqrt(1 + rho)`` (see the module docstring).
    ramp : float, default 0.7
        Fraction of ``max_steps`` over which the pump ``a(t)`` rises from 0 to 1, in (0, 1]; it then
        holds at 1.
    seed : int, default 0
        Seed of the initial positions and momenta (uniform in [-0.1, 0.1]); same seed, same result.
    early_stopping : bool, default True
        After the pump has reached 1, stop an agent once all its positions are at the walls and its
        spins have been identical for ``patience`` consecutive checks made every ``check_every`` steps;
        the run ends when every agent has stopped.
    dtype : {"float32", "float64"}
        Precision of the dynamics (energies are always recomputed in float64).
    num_threads : int, optional
        torch threads for this call (restored afterwards); ``None`` keeps torch's setting.
    """
    qubo = _as_qubo(problem)
    check_choice("mode", mode, SB_MODES)
    n_agents = check_int("n_agents", n_agents, 1)
    max_steps = check_int("max_steps", max_steps, 1)
    if dt is not None:
        dt = check_real("dt", dt, 0, 2, low_open=True)
    ramp = check_real("ramp", ramp, 0, 1, low_open=True)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    if not isinstance(early_stopping, (bool, np.bool_)):
        raise ParameterError("early_stopping", early_stopping, "True or False")
    check_every = check_int("check_every", check_every, 1)
    patience = check_int("patience", patience, 1)
    check_choice("dtype", dtype, ("float32", "float64"))
    if num_threads is not None:
        num_threads = check_int("num_threads", num_threads, 1)

    t0 = time.perf_counter()
    with _torch_threads(num_threads):
        samples, steps, stopped, dt = _sb_run(qubo, mode, n_agents, max_steps, dt, ramp, seed,
                                          bool(early_stopping), check_every, patience,
                                          getattr(torch, dtype))
    energies = qubo.energy(samples)
    best = int(np.argmin(energies))
    return SBResult(samples[best].copy(), float(energies[best]), samples, energies, steps, stopped,
                    time.perf_counter() - t0, mode, dt)


def _stiffness(K: np.ndarray, a0: float, iterations: int = 60) -> float:
    """``sqrt(a0 + rho)`` with ``rho`` (power iteration, +5%) the spectral radius of the scaled couplings.

    The linear part of the dynamics, ``x'' = -(a0 - a) x + K x``, is integrated stably by symplectic
    Euler only while ``dt * sqrt(a0 + rho) < 2``; a "select k" penalty adds one very stiff mode (all
    spins moving together, ``rho`` of order ``0.5 sqrt(n)``), so ``dt`` must shrink as ``n`` grows."""
    n = K.shape[0]
    v = np.random.default_rng(0).standard_normal(n)
    rho = 0.0
    for _ in range(iterations):
        w = K @ v
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            break
        rho, v = norm / float(np.linalg.norm(v)), w / norm
    return math.sqrt(a0 + 1.05 * rho)


def _sb_run(qubo: QUBO, mode: str, n_agents: int, max_steps: int, dt: float | None, ramp: float, seed: int,
            early_stopping: bool, check_every: int, patience: int, tdtype
            ) -> tuple[np.ndarray, int, int, float]:
    ising = qubo.to_ising()
    n = ising.n
    K = -2.0 * ising.J                     # SB convention: E = -1/2 s^T K s - b^T s (+ const)
    b = -ising.h
    rms = math.sqrt(float((K**2).sum()) / (n * (n - 1))) if n > 1 else 0.0
    c0 = 0.5 / (rms * math.sqrt(n)) if rms > 0 else 0.5
    Kt = torch.as_tensor(K * c0, dtype=tdtype)   # c0 folded into the couplings and the field
    bt = torch.as_tensor(b * c0, dtype=tdtype)
    a0 = 1.0
    limit = _stiffness(K * c0, a0)
    dt = 0.5 / limit if dt is None else min(dt, 1.8 / limit)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_agents, n, generator=gen, dtype=tdtype) * 2 - 1) * 0.1
    y = (torch.rand(n_agents, n, generator=gen, dtype=tdtype) * 2 - 1) * 0.1
    discrete = mode == "discrete"
    ramp_steps = max(1.0, ramp * max_steps)
    final = np.zeros((n_agents, n), dtype=bool)
    active = np.arange(n_agents)
    prev = torch.zeros(n_agents, n, dtype=torch.bool)
    stable = torch.zeros(n_agents, dtype=torch.int64)
    stopped = 0
    step = 0
    for step in range(1, max_steps + 1):
        pump = a0 * min(1.0, (step - 1) / ramp_steps)
        phi = torch.sign(x) if discrete else x
        # y += dt * (-(a0 - a) x + c0 (K phi(x) + b)); x += dt * a0 * y   (symplectic Euler)
        y.add_(x, alpha=-dt * (a0 - pump))
        y.addmm_(phi, Kt, alpha=dt)
        y.add_(bt, alpha=dt)
        x.add_(y, alpha=dt * a0)
        wall = x.abs() > 1.0
        y.masked_fill_(wall, 0.0)
        x.clamp_(-1.0, 1.0)
        if early_stopping and pump >= a0 and step % check_every == 0 and step < max_steps:
            spins = x >= 0
            settled = (spins == prev).all(dim=1) & (x.abs() == 1.0).all(dim=1)
            stable = torch.where(settled, stable + 1, torch.zeros_like(stable))
            prev = spins
            done = stable >= patience
            if bool(done.any()):
                idx = done.numpy()
                final[active[idx]] = spins[done].numpy()
                stopped += int(idx.sum())
                keep = ~done
                active = active[~idx]
                if active.size == 0:
                    break
                x, y, prev, stable = x[keep], y[keep], prev[keep], stable[keep]
    if active.size:
        final[active] = (x >= 0).numpy()
    return final.astype(np.int8), step, stopped, dt
