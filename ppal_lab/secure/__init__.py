"""Secure computation: the single CrypTen import shim and multi-process party helpers
(``crypten_compat``, ``twoparty``), fixed point and its measured error (``fixed_point``), Shamir sharing
(``shamir``), secure similarity (``similarity``), the passes of a perceptron on shares
(``mlp_on_shares``) with the two trainers built on them -- one network (``secure_mlp``) and the secure
two-party MADDPG (``secure_maddpg``, the driver; ``maddpg_party``, one player's process) -- the sigmoid on
shares (``secure_sigmoid``) and small party functions for demonstrations and tests (``examples``); the
consortium's infrastructure: the hybrid X25519 + ML-KEM-768 key exchange (``key_exchange``), DH private
set intersection for schema and record alignment (``psi``, needs ``rbcl``) and secure aggregation with
drop-outs (``secure_aggregation``).

Who may import it: ``chapters`` (and tests and benchmarks). It imports ``marl`` (the secure MADDPG reuses
the game, the learner and its networks) and the compendium's ``errors`` and ``paths`` only.

``from ppal_lab.secure import crypten`` is the only way the project imports CrypTen (see
:mod:`ppal_lab.secure.crypten_compat` for why a shim is needed on torch 2.x). The names below are loaded
lazily, on first use, so that the modules of this package that need no CrypTen import quickly.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "crypten": "crypten_compat",
    "load_trusted": "crypten_compat",
    "from_pytorch": "crypten_compat",
    "run_parties": "twoparty",
    "run_this_party": "twoparty",
    "comm_stats": "twoparty",
    "reveal_to": "twoparty",
    "PartyError": "twoparty",
    "PartyTimeout": "twoparty",
    "PartyResults": "twoparty",
    "PartyOutcome": "twoparty",
    "CommStats": "twoparty",
    "PRECISION_BITS_RANGE": "fixed_point",
    "TRAINING_PRECISION_BITS_RANGE": "fixed_point",
    "MLPConfig": "secure_mlp",
    "run_secure_training": "secure_mlp",
    "SecurePhase": "secure_maddpg",
    "SecureSettings": "secure_maddpg",
    "run_secure_phase": "secure_maddpg",
    "weight_table": "secure_maddpg",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
