"""The notebooks' code reads in the book's column: formatted by ruff at 88 characters a line.

The book shows code cells in a column about 90 characters wide at 1400 px; longer lines scroll sideways.
`ruff format --line-length 88 notebooks/` fixes what this finds. Without ruff the test skips with the
reason, except under CI (``CI`` set), where ruff is part of the test extra and its absence fails the run.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ppal_lab.compendium.paths import notebooks_dir

NOTEBOOKS = sorted(notebooks_dir().glob("[0-9]*.ipynb"))
LINE_LENGTH = 88


def _ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("ruff is not installed (it is in the test extra: pip install -e '.[test]')")
    pytest.skip("ruff is not installed: pip install 'ruff>=0.17,<0.18' to check the notebooks' format")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_is_formatted_by_ruff(path):
    done = subprocess.run([_ruff(), "format", "--check", "--diff", "--isolated", "--line-length",
                           str(LINE_LENGTH), str(path)], capture_output=True, text=True)
    assert done.returncode == 0, f"run `ruff format --line-length 88 {path.name}`:\n{done.stdout[-3000:]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_code_line_is_longer_than_the_column(path):
    """The formatter leaves long strings and comments alone: those are split by hand."""
    nb = nbformat.read(path, 4)
    long = [(i, len(line)) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for line in c.source.splitlines() if len(line) > LINE_LENGTH]
    assert not long, f"(cell, length) of lines over {LINE_LENGTH} characters: {long}"
