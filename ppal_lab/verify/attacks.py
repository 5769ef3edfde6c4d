r"""What the revealed similarity score leaks: a curious verifier that submits a few legitimate-looking
claims about one item (:func:`probe_claims`) recovers the item's private bench readings from the revealed
scores by trilateration (:func:`reconstruct_readings`). Computing the similarity on secret shares
(:mod:`ppal_lab.secure.similarity`) does not prevent it; revealing only the decision bit does.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ppal_lab import data as D
from ppal_lab.compendium.errors import ParameterError, check_int
from ppal_lab.verify.bench import BENCH_SD
from ppal_lab.verify.claims import ClaimBatch

__all__ = ["probe_claims", "reconstruct_readings"]


def reconstruct_readings(simulated: Any, scores: Any, sd: Any = BENCH_SD) -> np.ndarray:
    r"""Recover private readings from revealed similarity scores by trilateration.

    Each score gives :math:`D_i^2 = k (1/s_i - 1) = \lVert (m - \hat m_i)/\sigma \rVert^2` (when no
    channel reached the cap :math:`Z`). Subtracting the first equation from the others leaves a
    linear system in :math:`u = m/\sigma`, solved by least squares; ``k + 1`` affinely independent
    points :math:`\hat m_i` determine :math:`m` exactly.

    Parameters
    ----------
    simulated : array_like of shape (q, k)
        The points the verifier chose (simulated readings), ``q >= k + 1``.
    scores : array_like of shape (q,)
        The revealed scores, in (0, 1].
    sd : array_like of shape (k,)
        The public noise SDs.
    """
    P = np.asarray(simulated, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] < P.shape[1] + 1 or s.shape != (P.shape[0],) or sd.shape != (P.shape[1],):
        raise ParameterError("simulated", f"array of shape {P.shape}", "(q, k) with q >= k + 1, "
                             "scores of shape (q,) and sd of shape (k,)")
    if not np.all((s > 0) & (s <= 1)):
        raise ParameterError("scores", s.tolist(), "values in (0, 1]")
    k = P.shape[1]
    d2 = k * (1.0 / s - 1.0)
    V = P / sd
    A = 2.0 * (V[1:] - V[0])
    b = (V[1:] ** 2).sum(1) - (V[0] ** 2).sum() - d2[1:] + d2[0]
    u, *_ = np.linalg.lstsq(A, b, rcond=None)
    return u * sd


def probe_claims(batch: ClaimBatch, item: int, n_probes: int = 5) -> ClaimBatch:
    """``n_probes`` legitimate-looking claims about one item that a curious verifier could submit:
    its claimed health shifted by small steps, and once with the defect flipped (so the simulated
    readings span all four directions). Returns a batch of ``n_probes`` copies of the item."""
    item = check_int("item", item, 0, len(batch) - 1)
    n_probes = check_int("n_probes", n_probes, len(D.BENCH_COLUMNS) + 1, 50)
    probes = batch.subset(np.full(n_probes, item))
    steps = np.linspace(-0.12, 0.12, n_probes - 1)
    h = np.clip(probes.health[0] + np.r_[steps, 0.0], 0.0, 1.0)
    d = probes.defect.copy()
    d[-1] = 1.0 - d[-1]
    return replace(probes, health=h, defect=d)
