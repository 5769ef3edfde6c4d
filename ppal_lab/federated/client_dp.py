r"""Client-level differential privacy of federated updates with Flower's functions.

The unit of privacy is one *site* (all its records): a site's update is clipped to L2 norm
:math:`C` (*fixed clipping*, Flower's ``compute_clip_model_update``: the update ``local - global`` is
scaled by :math:`\min(1, C/\lVert u\rVert)`), and Gaussian noise hides whether the site's update was
in the aggregate. Flower ships two forms (``flwr.supercore.differential_privacy``, used by the
strategy wrappers ``DifferentialPrivacyClientSideFixedClipping``/``ServerSideFixedClipping`` and by
``fixedclipping_mod``); both are here, with the standard deviation from Flower's ``compute_stdv``:

* :func:`noisy_fedavg` (*central*): the server averages the ``n`` clipped updates and adds
  :math:`\mathcal N(0, (zC/n)^2)`: the mean's sensitivity to one site is :math:`C/n`. Only the mean
  is protected; a server that sees the individual updates learns them.
* :class:`ClippedSites` with ``noise_multiplier`` (*at the sites*): every site adds
  :math:`\mathcal N(0, (zC)^2)` to its own clipped update before sending it. Each site is protected
  against the server too, and anything the server computes from the updates (a median, Krum) is
  post-processing, so robust rules keep the guarantee; the price is :math:`\sqrt n` times the noise
  in the mean.

Adjacency: a site's data present or absent (an absent site sends a zero update), so the sensitivity
of one site's contribution is :math:`C`; :math:`z` for :math:`(\varepsilon, \delta)` over ``rounds``
rounds of full participation is :func:`ppal_lab.privacy.accounting.noise_multiplier_for`
(``sample_rate = 1``). The noise is drawn from the run's seeded generator, not from Flower's (which
draws from NumPy's global state), so that runs repeat.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from flwr.supercore.differential_privacy import compute_clip_model_update, compute_stdv

from ppal_lab.compendium.errors import as_generator, check_positive
from ppal_lab.federated.protocol import SiteGroupWrapper

__all__ = ["ClippedSites", "clip_update", "noisy_fedavg"]


def clip_update(local: torch.Tensor, global_params: torch.Tensor, clipping_norm: float) -> np.ndarray:
    """``global + clip(local - global)`` by Flower's ``compute_clip_model_update`` (float64)."""
    out = [torch.as_tensor(local).detach().to(torch.float64).numpy().copy()]
    g = torch.as_tensor(global_params).detach().to(torch.float64).numpy()
    clipping_norm = check_positive("clipping_norm", clipping_norm)
    if np.any(out[0] != g):  # Flower's clip divides by the norm: a zero update stays as it is
        compute_clip_model_update(out, [g], clipping_norm)
    return out[0]


class ClippedSites(SiteGroupWrapper):
    """A site group whose sites clip their updates to ``clipping_norm`` (fixed clipping at the client)
    and, with ``noise_multiplier`` ``z``, add :math:`\\mathcal N(0, (z C)^2)` to them (module
    docstring); ``rng`` draws that noise. The other site-group methods pass through."""

    def __init__(self, sites: Any, clipping_norm: float, noise_multiplier: float | None = None,
                 rng: Any = 0) -> None:
        self.sites, self.clipping_norm = sites, check_positive("clipping_norm", clipping_norm)
        self.noise_multiplier = None if noise_multiplier is None else check_positive("noise_multiplier",
                                                                                     noise_multiplier)
        self.rng = as_generator(rng)

    def train(self, params: torch.Tensor, t: int) -> list[torch.Tensor | None]:
        out = []
        for v in self.sites.train(params, t):
            if v is None:
                out.append(None)
                continue
            w = clip_update(v, params, self.clipping_norm)
            if self.noise_multiplier is not None:
                w += self.rng.normal(0.0, compute_stdv(self.noise_multiplier, self.clipping_norm, 1), w.shape)
            out.append(torch.as_tensor(w, dtype=v.dtype))
        return out


def noisy_fedavg(noise_multiplier: float, clipping_norm: float, rng: Any = 0
                 ) -> Callable[[Sequence[torch.Tensor], Any], torch.Tensor]:
    """The server side of central client-level DP as an ``aggregate(vectors, weights)``: the plain
    mean of the (already clipped) models plus :math:`\\mathcal N(0, (zC/n)^2)` per coordinate
    (``compute_stdv(z, C, n)``). Sites count equally: weighting by data size would change the
    sensitivity."""
    z, clip, gen = check_positive("noise_multiplier", noise_multiplier), check_positive(
        "clipping_norm", clipping_norm), as_generator(rng)

    def aggregate(vectors: Sequence[torch.Tensor], weights: Any = None) -> torch.Tensor:
        V = np.stack([torch.as_tensor(v).detach().to(torch.float64).numpy() for v in vectors])
        mean = V.mean(0) + gen.normal(0.0, compute_stdv(z, clip, len(vectors)), V.shape[1])
        return torch.as_tensor(mean, dtype=torch.as_tensor(vectors[0]).dtype)

    return aggregate
