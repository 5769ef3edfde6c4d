"""The registry every chapter's spec module adds itself to."""
from __future__ import annotations

from ppal_lab.compendium.params import NotebookSpec

SPECS: dict[str, NotebookSpec] = {}


def register(spec: NotebookSpec) -> NotebookSpec:
    SPECS[spec.name] = spec
    return spec
