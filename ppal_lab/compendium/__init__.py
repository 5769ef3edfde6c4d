"""The compendium's machinery: notebook specs and parameters, the papermill runner and the ``ppal-lab``
command line, result records and the claims ledger, reproducibility (floating-point pins, record
comparison), plot style, paths and errors.

Who may import it: everyone. It imports nothing of the field (``data``, ``learning``, ``privacy``,
``federated``, ``secure``, ``optimize``, ``marl``, ``verify``) or of ``chapters``; the field rooms use only
its ``errors`` and ``paths`` (``tests/compendium/test_architecture.py`` checks both).
"""
