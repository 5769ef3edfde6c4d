"""Figures and tables of the QUBO feature-selection chapter (notebooks/05), on tiny hand-made inputs."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.colors import to_rgba

from ppal_lab.chapters import ch05_qubo_feature_selection_figures as fxfig
from ppal_lab.compendium import plots


@pytest.fixture(autouse=True)
def _style():
    plots.use_style()
    yield
    plt.close("all")


def test_worked_example_bars_the_most_relevant_features_and_colours_the_selected():
    relevance = np.array([0.1, 1.0, 0.5, 0.7, 0.05])
    names = np.array(list("abcde"))
    fig = fxfig.plot_worked_example(relevance, names, {1, 2}, "bSB + swap (ours)", n_top=3)
    ax = fig.axes[0]
    assert ax.get_title() == "Relevance of the 3 most relevant features (blue: selected by bSB + swap (ours))"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "d", "b"]  # the most relevant on top
    widths = [p.get_width() for p in ax.patches]
    assert widths == [0.5, 0.7, 1.0]
    blue, grey = to_rgba(sns.color_palette()[0]), ax.patches[1].get_facecolor()
    assert ax.patches[0].get_facecolor() == ax.patches[2].get_facecolor() == blue and grey != blue
    assert fig.get_size_inches()[0] <= 7.5


def _summary():
    return pd.DataFrame({"solver": ["bsb", "greedy"], "label": ["bSB (ours, raw)", "greedy mRMR (Peng)"],
                         "success": [0.9, 0.4], "wilson_lo": [0.8, 0.3], "wilson_hi": [0.95, 0.5],
                         "mean_gap": [0.01, 0.1], "max_gap": [0.1, 0.3], "feasible": [1.0, 1.0],
                         "mean_time_ms": [3.0, 1.0], "extra": [0, 0]})


def test_optimality_table_keeps_the_shown_columns_in_order():
    table = fxfig.optimality_table(_summary())
    assert list(table.columns) == fxfig.OPTIMALITY_COLUMNS and "extra" not in table
    assert table.loc[1, "success"] == 0.4


def test_optimality_figure_sorts_solvers_by_success_and_draws_every_gap():
    opt = pd.DataFrame({"solver": ["bsb"] * 3 + ["greedy"] * 3, "gap": [0.0, 0.0, 0.2, 0.0, 0.1, 0.3]})
    fig = fxfig.plot_optimality(opt, _summary(), n_instances=3)
    top, bottom = fig.axes
    assert top.get_title() == "Exact optimum found (3 instances, Wilson 95% CI)"
    assert [t.get_text() for t in top.get_yticklabels()] == ["greedy mRMR (Peng)", "bSB (ours, raw)"]
    assert [p.get_width() for p in top.patches] == [0.4, 0.9] and top.get_xlim() == (0, 1.02)
    assert bottom.get_xscale() == "log" and sum(len(c.get_offsets()) for c in bottom.collections) == 6
    assert min(min(c.get_offsets()[:, 0]) for c in bottom.collections if len(c.get_offsets())) == 1e-6
    assert fig.get_size_inches()[0] <= 7.5


def test_load_note_reads_the_load_before_and_after():
    assert fxfig.load_note(0.04, 2.26, 16) == "load average (1 min) on this machine: 0.0 before, 2.3 after, 16 cores"


def test_peers_figure_has_a_panel_per_size_and_one_legend_of_solvers():
    peers = pd.DataFrame({"n": [50, 50, 200, 200, 1000, 1000], "solver": ["bsb", "sa"] * 3,
                          "time_s": [0.1, 0.2, 0.3, 0.4, 1.0, 2.0], "gap_to_best": [0.0, 0.01, 0.02, 0.0, 0.0, 0.1]})
    fig = fxfig.plot_peers(peers, k=15)
    assert [ax.get_title() for ax in fig.axes[:3]] == [f"n = {n} features, k = 15" for n in (50, 200, 1000)]
    assert len(fig.axes[0].collections[0].get_offsets()) == 2
    assert all(ax.get_legend() is None for ax in fig.axes[:3])
    legend = fig.axes[3].get_legend()
    assert legend.get_title().get_text() == "solver"
    assert [t.get_text() for t in legend.get_texts()] == ["bSB (ours, raw)", "D-Wave simulated annealing"]
    assert fig.axes[0].get_xscale() == fig.axes[0].get_yscale() == "log" and not fig.axes[3].axison
    plt.close(fig)


def test_tts_table_pivots_solvers_and_is_none_without_instances():
    instances = [{"instance": "planted n=100", "target_kind": "planted", "discriminates": False,
                  "solvers": {"bsb": {"p_run": 0.0, "tts99_s": None}, "sa": {"p_run": 0.5, "tts99_s": 2.5}}},
                 {"instance": "mrmr n=50", "target_kind": "best known", "discriminates": True,
                  "solvers": {"bsb": {"p_run": 1.0, "tts99_s": 0.01}, "sa": {"p_run": 1.0, "tts99_s": 0.02}}}]
    table = fxfig.tts_table(instances)
    assert list(table.columns) == ["bsb", "sa"] and table.index.names == ["instance", "target", "discriminates"]
    assert table.loc[("planted n=100", "planted", False), "sa"] == 2.5
    assert pd.isna(table.loc[("planted n=100", "planted", False), "bsb"])
    assert plots.table(table, digits=2).iloc[1, 0] == "—"
    assert fxfig.tts_table([]) is None


def _down():
    rows = [("magnet", "all", 30, 0.9, 0.88, 0.92), ("magnet", "sb", 5, 0.8, 0.7, 0.85),
            ("magnet", "sb", 10, 0.85, 0.8, 0.9), ("magnet", "random", 5, 0.6, 0.5, 0.7),
            ("magnet", "random", 10, 0.7, 0.6, 0.8), ("wine", "all", 13, 0.95, 0.9, 1.0),
            ("wine", "sb", 5, 0.93, 0.9, 0.96), ("wine", "random", 5, 0.8, 0.7, 0.9)]
    return pd.DataFrame(rows, columns=["dataset", "selector", "k", "accuracy", "ci_lo", "ci_hi"])


def test_downstream_accuracy_table_names_selectors_and_repeats_the_all_features_model():
    table = fxfig.downstream_accuracy_table(_down(), "bsb", True)
    assert list(table.columns) == ["random k features", "bSB + swap (ours)", "all features"]
    assert table.loc[("magnet", 10), "bSB + swap (ours)"] == 0.85
    assert table["all features"].tolist() == [0.9, 0.9, 0.95]
    assert table.loc[("wine", 5), "random k features"] == 0.8


def test_downstream_figure_has_a_panel_per_data_set_with_lines_bands_and_one_legend():
    fig = fxfig.plot_downstream(_down(), ["magnet", "wine"], 4, "bsb", False)
    top, bottom = fig.axes
    assert top.get_title() == "magnet: held-out accuracy (4 seeds, 95% CI)" and top.get_legend() is None
    assert [ln.get_label() for ln in top.lines[1:]] == ["bSB (ours, raw)", "random k features"]
    assert list(top.lines[1].get_ydata()) == [0.8, 0.85] and top.lines[0].get_ydata()[0] == 0.9
    labels = [t.get_text() for t in bottom.get_legend().get_texts()]
    assert labels == ["all features (95% CI)", "bSB (ours, raw)", "random k features"]
    assert tuple(fig.get_size_inches()) == (7.5, 7)
