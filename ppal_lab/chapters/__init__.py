"""One experiment module per notebook, named like it (``ch02_active_learning`` for
``notebooks/02_active_learning.ipynb``): the chapter's studies, summaries and record filling, built on
the field rooms.

Who may import it: the notebook of the same name, its tests and its benchmarks; chapters do not import
each other. It may import any field room and the compendium.
"""
