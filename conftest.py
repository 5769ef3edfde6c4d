"""Test-session set-up shared by the unit tests and nbval: notebooks executed by the tests write their
result records and figures into a temporary folder, never over the committed ones.

``ppal_lab`` is imported first so that its floating-point pins (``ppal_lab.numerics``) are in the
environment before numpy or torch load, in this process and in every kernel nbval starts.
"""
import os
import tempfile

import ppal_lab  # noqa: F401  (pins the floating-point paths)

os.environ.setdefault("PPAL_OUTPUT_DIR", tempfile.mkdtemp(prefix="ppal-test-"))
os.environ.setdefault("MPLBACKEND", "Agg")
