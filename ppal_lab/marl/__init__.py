"""Multi-agent reinforcement learning for the two-player supply chain: the game as a PettingZoo
environment (``supply_game``), MADDPG with and without data sharing (``maddpg``), the networks as plain
tensors with their hand-written passes and Adam (``networks``), and the identical external randomness
of every run (``randomness``). Chapter 7's driver and summaries live in
:mod:`ppal_lab.chapters.ch07_supply_chain_maddpg`.

Who may import it: ``secure`` (the secure MADDPG reuses the game, the learner and the networks) and
``chapters``. It imports only the compendium's ``errors`` and ``paths``. Every module of this room needs
torch, so the names below are imported eagerly.
"""
from __future__ import annotations

from ppal_lab.marl.maddpg import MADDPG, MODES, MADDPGConfig, random_policy
from ppal_lab.marl.networks import Adam, NetStack, mlp_backward, mlp_forward
from ppal_lab.marl.randomness import ExternalRandomness
from ppal_lab.marl.supply_game import GameConfig, SupplyChainEnv, SupplyChainVec, normalized_revenue

__all__ = ["Adam", "ExternalRandomness", "GameConfig", "MADDPG", "MADDPGConfig", "MODES", "NetStack",
           "SupplyChainEnv", "SupplyChainVec", "mlp_backward", "mlp_forward", "normalized_revenue",
           "random_policy"]
