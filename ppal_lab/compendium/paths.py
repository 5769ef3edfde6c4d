"""Where things live: the repository, the committed notebooks, and where a run writes its outputs.

A run writes its result record and figures into ``PPAL_OUTPUT_DIR`` when that is set (``ppal-lab run``
and the test suite set it, so they never overwrite committed results); otherwise into ``data/results``
and ``figures/`` of the repository.
"""
from __future__ import annotations

import os
from pathlib import Path

OUTPUT_ENV = "PPAL_OUTPUT_DIR"


def repo_root() -> Path:
    """The compendium's top folder (the one holding ``_config.yml``)."""
    env = os.environ.get("PPAL_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "_config.yml").exists():
        return here
    return Path.cwd().resolve()


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def results_dir() -> Path:
    """Folder for result records (JSON)."""
    out = os.environ.get(OUTPUT_ENV)
    path = Path(out) if out else repo_root() / "data" / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir() -> Path:
    """Folder for exported figures (PNG/SVG)."""
    out = os.environ.get(OUTPUT_ENV)
    path = Path(out) / "figures" if out else repo_root() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Git-ignored folder for ``ppal-lab run`` and ``ppal-lab sweep`` outputs."""
    return repo_root() / "runs"
