"""The book builds offline with warnings as errors, so a broken page fails the tests."""
import subprocess
import sys
from pathlib import Path

import pytest

from ppal_lab.compendium.paths import repo_root


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_book_builds_without_warnings():
    jb = Path(sys.executable).with_name("jupyter-book")
    out = subprocess.run([str(jb), "build", str(repo_root()), "-W", "-n", "--keep-going"],
                         capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert (repo_root() / "_build" / "html" / "index.html").exists()
