"""The shared figure style: one colour-blind-safe palette, labelled axes, figures saved to figures/.

Figures are sized for the book's column (about 780 px at 1400 px): 7.5 in wide at 100 dpi is 750 px, so a
figure is shown at its natural size and its 9-10 pt labels are 12-14 px high on screen. A figure has at
most two panels per row (more panels -> more rows); the saved PNGs use 200 dpi for print and slides.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ppal_lab.compendium.paths import figures_dir

PALETTE = "colorblind"
COLUMN_WIDTH_IN = 7.5  # the widest figure the book shows unshrunk (at figure.dpi = 100)
# unit suffixes of column names, longest first: "vibration_rms_mm_s" -> "vibration rms (mm/s)"
UNITS = {"_mm_s": "mm/s", "_kkm": "1000 km", "_arcmin": "arcmin", "_ppm": "ppm", "_mbytes": "MB",
         "_ms": "ms", "_kb": "kB", "_s": "s", "_c": "°C"}


def use_style() -> None:
    """Apply the compendium's style (call once at the top of a notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.8)
    plt.rcParams.update({"figure.figsize": (COLUMN_WIDTH_IN, 3.6), "figure.dpi": 100,
                         "savefig.dpi": 200, "savefig.bbox": "tight", "axes.titleweight": "bold",
                         "axes.titlesize": 10, "legend.fontsize": 8, "legend.title_fontsize": 8,
                         "figure.autolayout": False})


def save(fig: plt.Figure, name: str, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.<fmt>`` (or into the run's output folder); PNG by default,
    add ``"svg"`` for slides and papers (large for dense scatter plots)."""
    paths = []
    for fmt in formats:
        path = figures_dir() / f"{name}.{fmt}"
        fig.savefig(path, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(path)
    return paths


def table(frame: pd.DataFrame | pd.Series, digits: int = 3, missing: str = "—") -> pd.DataFrame:
    """``frame`` as a reader sees it in the book: headers in words (``snake_case`` -> "snake case", unit
    suffixes in brackets), columns of whole numbers without a decimal point ("2008", not "2008.0"), other
    numbers to ``digits`` decimals (tiny ones to two significant digits) and missing cells as ``missing``
    (say in the caption or the text what it means). Transpose after formatting, not before, to keep a
    column of whole numbers whole."""
    def number(v) -> bool:
        return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))

    def column(values: pd.Series) -> pd.Series:
        whole = all(float(v).is_integer() for v in values if number(v) and not pd.isna(v))

        def cell(v):
            if not number(v):
                return v
            if pd.isna(v):
                return missing
            if whole:
                return f"{int(v):d}"
            return f"{v:.{digits}f}" if abs(v) >= 10 ** -digits or v == 0 else f"{v:.2g}"
        return values.map(cell)

    def words(name):
        if not isinstance(name, str):
            return name
        for suffix, unit in UNITS.items():
            if name.endswith(suffix) and len(name) > len(suffix):
                return f"{name[:-len(suffix)].replace('_', ' ')} ({unit})"
        return name.replace("_", " ")

    if isinstance(frame, pd.Series):
        frame = frame.to_frame(frame.name if frame.name is not None else "value")
    out = frame.apply(column).rename(columns=words, index=words)
    out.columns.names = [words(n) for n in out.columns.names]
    out.index.names = [words(n) for n in out.index.names]
    return out
