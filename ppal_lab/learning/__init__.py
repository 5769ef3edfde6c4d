"""Active learning and learning under change: uncertainty strategies and learning curves (``active``),
density-aware acquisition and cold start (``acquisition``), continual learning with EWC (``continual``).

Who may import it: other field rooms (``federated``, ``verify``) and ``chapters``. It imports only
``data`` and the compendium's ``errors`` and ``paths``. Import the modules themselves
(``from ppal_lab.learning import acquisition as aq``); ``continual`` loads torch, so nothing is
imported eagerly here.
"""
from __future__ import annotations

__all__ = ["acquisition", "active", "continual"]
