"""Multi-agent reinforcement learning for the two-player supply chain: the game as a PettingZoo
environment (``supply_game``) and MADDPG with and without data sharing (``maddpg``).

Who may import it: ``secure`` (the secure MADDPG reuses the game and the networks) and ``chapters``.
It imports only the compendium's ``errors`` and ``paths``.
"""
