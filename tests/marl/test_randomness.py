"""The external randomness of :mod:`ppal_lab.marl.randomness`: independent streams seeded by the run's seed."""
import numpy as np

from ppal_lab.marl.randomness import ExternalRandomness


def test_streams_are_independent_of_each_other_and_depend_on_the_seed():
    a, b = ExternalRandomness(1), ExternalRandomness(1)
    a.minibatch(100, 10)                                  # using one stream leaves the others alone
    np.testing.assert_array_equal(a.demand("real", 5), b.demand("real", 5))
    assert not np.array_equal(ExternalRandomness(2).demand("real", 5), b.demand("real", 5))
