"""The shared style draws figures for the book's column, and tables print the way readers read them."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ppal_lab.compendium import plots  # noqa: E402


def test_a_default_figure_fits_the_column_unshrunk():
    plots.use_style()
    fig, _ = plt.subplots()
    width_px = fig.get_figwidth() * fig.dpi
    plt.close(fig)
    assert width_px <= 784  # the column at 1400 px; the book test measures the shrink in Chromium


def test_table_prints_whole_numbers_as_integers_headers_in_words_and_marks_missing_cells():
    frame = pd.DataFrame({"model_year": [2008.0, 2014.0], "vibration_rms_mm_s": [2.3384, np.nan],
                          "flag": [True, False]}, index=pd.Index([0, 1], name="item_id"))
    shown = plots.table(frame, digits=2)
    assert list(shown.columns) == ["model year", "vibration rms (mm/s)", "flag"]
    assert shown.index.name == "item id"
    assert shown.loc[0, "model year"] == "2008" and shown.loc[0, "vibration rms (mm/s)"] == "2.34"
    assert shown.loc[1, "vibration rms (mm/s)"] == "—"
    assert not shown.loc[1, "flag"]  # a bool stays a bool (not the string "False")
    assert plots.table(pd.Series([0.00012, 0.5], name="tiny_value")).iloc[0, 0] == "0.00012"
    assert list(plots.table(pd.Series([0.0, 0.25, 1.0]))["value"]) == ["0.000", "0.250", "1.000"]
