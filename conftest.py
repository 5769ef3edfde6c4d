"""Test-session set-up shared by the unit tests and nbval: notebooks executed by the tests write their
result records and figures into a temporary folder, never over the committed ones."""
import os
import tempfile

os.environ.setdefault("PPAL_OUTPUT_DIR", tempfile.mkdtemp(prefix="ppal-test-"))
os.environ.setdefault("MPLBACKEND", "Agg")
