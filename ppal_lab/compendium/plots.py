"""The shared figure style: one colour-blind-safe palette, labelled axes, figures saved to figures/."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from ppal_lab.compendium.paths import figures_dir

PALETTE = "colorblind"


def use_style() -> None:
    """Apply the compendium's style (call once at the top of a notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "figure.autolayout": False})


def save(fig: plt.Figure, name: str, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.<fmt>`` (or into the run's output folder); PNG by default,
    add ``"svg"`` for slides and papers (large for dense scatter plots)."""
    paths = []
    for fmt in formats:
        path = figures_dir() / f"{name}.{fmt}"
        fig.savefig(path, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(path)
    return paths
