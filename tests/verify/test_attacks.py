"""Tests of ppal_lab.verify.attacks: revealed similarity scores give the private readings away."""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab import verify as V
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.secure.similarity import plaintext_similarity


def test_revealed_scores_reconstruct_the_private_readings(setup):
    b = setup.test
    item = int(np.flatnonzero(b.kind == "clean")[0])
    probes = V.probe_claims(b, item)
    sim = setup.verifier.simulate_input(probes)
    assert np.all(np.abs((probes.readings - sim) / V.BENCH_SD) < 10)  # no channel capped
    scores = plaintext_similarity(probes.readings, sim, V.BENCH_SD)
    rec = V.reconstruct_readings(sim, scores)
    np.testing.assert_allclose(rec, b.readings[item], rtol=1e-6, atol=1e-6)
    with pytest.raises(ParameterError):
        V.reconstruct_readings(sim[:4], scores[:4])
