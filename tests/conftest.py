"""Fixtures shared by several test families (torch runs on one thread everywhere: the pins of
``ppal_lab.compendium.numerics`` see to that)."""
import pytest


@pytest.fixture(scope="module")
def phase():
    """One short secure MADDPG phase with the shares kept (hidden 16, batch 16, 6 iterations, seed 5):
    the secure room's tests and chapter 08's read the same kind of run."""
    from ppal_lab.chapters.ch08_secure_maddpg import equivalence_runs
    from ppal_lab.marl.maddpg import MADDPGConfig
    from ppal_lab.secure.secure_maddpg import SecureSettings

    return equivalence_runs([5], MADDPGConfig(hidden=16, batch_size=16), 6, SecureSettings(keep_shares=True),
                            pretrain_episodes=16, progress=False)[0]
