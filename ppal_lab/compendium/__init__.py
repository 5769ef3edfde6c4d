"""The compendium's machinery: notebook specs and parameters, the papermill runner and the ``ppal-lab``
command line, result records and the claims ledger, reproducibility (floating-point pins, record
comparison), plot style, paths and errors.

Who may import it: everyone. It imports nothing of the field (``data``, ``learning``, ``privacy``,
``federated``, ``secure``, ``optimize``, ``marl``, ``verify``) or of ``chapters``; the field rooms use only
its ``errors`` and ``paths`` (``tests/compendium/test_architecture.py`` checks both).
"""
from __future__ import annotations

import importlib

# Loaded on first use: importing ``ppal_lab`` must not load numpy before ``numerics.pin`` has run.
_LAZY = {
    "NotebookSpec": "params", "Param": "params", "Tolerance": "params", "Constraint": "params",
    "SPECS": "specs", "validate_notebook": "specs", "resolve": "specs",
    "ResultRecord": "results", "mean_ci": "results", "load_record": "results",
    "ParameterError": "errors", "compare_records": "reproduce",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
