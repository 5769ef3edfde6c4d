"""Secure computation: the single CrypTen import shim and multi-process party helpers.

``from ppal_lab.secure import crypten`` is the only way the project imports CrypTen (see
:mod:`ppal_lab.secure.crypten_compat` for why a shim is needed on torch 2.x). The CrypTen-related names
below are loaded lazily, on first use, so that the other modules of this package (which need no
CrypTen) import quickly.
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
