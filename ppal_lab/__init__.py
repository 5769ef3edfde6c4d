"""ppal_lab — the shared code of the PPAL compendium.

Algorithms, data generators and experiment logic live here; the notebooks in ``notebooks/`` tell the
story and plot. See the README and ``book/`` for the map.
"""
__version__ = "0.1.0"
