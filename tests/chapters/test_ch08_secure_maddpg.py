"""Chapter 8's summaries, operation counts and verdict rules (:mod:`ppal_lab.chapters.ch08_secure_maddpg`):
the parties count what Appendix F's shapes predict (section "The complexity theorems against measured
counts"), the Table 3 summaries, and the verdicts of section "Headline figures and verdicts"."""
from __future__ import annotations

import numpy as np
import pytest

from ppal_lab.chapters.ch08_secure_maddpg import (equivalence_verdict, full_scale_verdict,
                                                  iteration_counts, linearity_verdict)
from ppal_lab.marl.maddpg import MADDPGConfig

CFG = MADDPGConfig(hidden=16, batch_size=16)


def test_parties_count_what_the_shapes_predict(phase):
    counts = iteration_counts(CFG)
    for key, value in counts.items():
        assert (phase.comm[key] == value).all(), key
    assert phase.comm["rounds"].nunique() == 1          # the protocol's rounds do not depend on the data
    assert (phase.offline_s[1:] > 0).all() and phase.offline_s[0] == 0   # iteration 0 traces, then cached


def test_chapter_summaries_of_a_phase(phase):
    from ppal_lab.chapters.ch08_secure_maddpg import (cost_drift, distinct_iteration_counts,
                                                    moving_average_errors, moving_averages)

    table3 = moving_average_errors(moving_averages([phase], window=3))
    assert set(table3.index) == {"reward_0", "reward_1", "total_reward", "wastage", "ncr"}
    assert (table3["mae"] <= table3["rmse"] + 1e-15).all() and table3["rmse"].max() < 1e-2
    assert len(distinct_iteration_counts([phase])) == 1
    drift = cost_drift([phase])
    assert list(drift) == [phase.seed] and np.isfinite(drift[phase.seed])


@pytest.mark.parametrize("per_seed_max, per_seed_rmse, verdict", [
    ([1e-4, 2e-4, 1.5e-4], [1e-5, 2e-5, 1.5e-5], "reproduced"),
    ([1e-4, 1.9e-2], [1e-5, 1e-5], "partly"),          # mean within 1%, upper bound not (n = 2)
    ([2e-2, 3e-2], [1e-5, 1e-5], "not reproduced"),
    ([1e-4, 2e-4], [2e-3, 3e-3], "not reproduced"),
])
def test_equivalence_verdict(per_seed_max, per_seed_rmse, verdict):
    assert equivalence_verdict(per_seed_max, per_seed_rmse, float(np.mean(per_seed_max)),
                               float(np.mean(per_seed_rmse))) == verdict


def test_linearity_and_full_scale_verdicts():
    assert linearity_verdict(1) == "reproduced" and linearity_verdict(2) == "not reproduced"
    assert full_scale_verdict(0.005, 0.1, 1e-4) == "reproduced"
    assert full_scale_verdict(0.05, 0.5, 1e-4) == "partly"
    assert full_scale_verdict(0.05, 1.0, 1e-2) == "not reproduced"
