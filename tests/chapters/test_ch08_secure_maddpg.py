"""Chapter 8's summaries, operation counts, nudge null and claims (:mod:`ppal_lab.chapters.ch08_secure_maddpg`):
the parties count what Appendix F's shapes predict (section "The complexity theorems against measured
counts"), the Table 3 summaries, Theorem 1's linearity on counted costs, the nudge null of the
equivalence claims, and that every declared claim is decided from metrics the chapter records."""
from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ppal_lab.chapters.ch08_secure_maddpg import (NUDGES, add_claims, cost_summary, distinct_iteration_counts,
                                                  fill_record, full_scale_run, iteration_counts,
                                                  lifetime_cost_linear, metric_averages, moving_average_errors,
                                                  moving_averages, nudge_null, nudged_learner, overhead_tables,
                                                  pretrained_learner, weights_by_network)
from ppal_lab.compendium.paths import repo_root
from ppal_lab.compendium.results import ResultRecord
from ppal_lab.compendium.specs import SPECS
from ppal_lab.marl.maddpg import MADDPGConfig
from ppal_lab.secure.secure_maddpg import NETWORKS, weight_table

CFG = MADDPGConfig(hidden=16, batch_size=16)
FULL_RECORD = repo_root() / "data" / "results" / "bench_secure_maddpg_full.json"


def test_parties_count_what_the_shapes_predict(phase):
    counts = iteration_counts(CFG)
    for key, value in counts.items():
        assert (phase.comm[key] == value).all(), key
    assert phase.comm["rounds"].nunique() == 1          # the protocol's rounds do not depend on the data
    # the triples come from the dealer, every iteration the same traffic after the first (in which player 0
    # records each stage's requests, then batched); the players' bytes by kind add up
    assert (phase.comm["dealer_bytes"] > 0).all() and phase.comm["dealer_rounds"][1:].nunique() == 1
    kinds = phase.profile[[k for k in phase.profile if k.endswith("_bytes")]].sum(axis=1)
    assert ((kinds - phase.comm["bytes"]).abs() <= 0.01 * phase.comm["bytes"]).all()


def test_chapter_summaries_of_a_phase(phase):
    from ppal_lab.chapters.ch08_secure_maddpg import cost_drift

    table3 = moving_average_errors(moving_averages([phase], window=3))
    assert set(table3.index) == {"reward_0", "reward_1", "total_reward", "wastage", "ncr"}
    assert (table3["mae"] <= table3["rmse"] + 1e-15).all() and table3["rmse"].max() < 1e-2
    assert len(distinct_iteration_counts([phase])) == 1
    drift = cost_drift([phase])
    assert list(drift) == [phase.seed] and np.isfinite(drift[phase.seed])


def test_lifetime_cost_is_judged_on_its_increments_not_on_every_iteration(phase):
    assert lifetime_cost_linear([phase])
    # a one-off cost in the first iteration keeps C(n) = a + b n linear, though the counts now differ
    setup = phase.comm.copy()
    setup.loc[0, "rounds"] += 7
    with_setup = dataclasses.replace(phase, comm=setup)
    assert lifetime_cost_linear([with_setup]) and len(distinct_iteration_counts([with_setup])) == 2
    # a per-iteration cost that grows with n is not linear in n, even by one comparison per iteration
    growing = phase.comm.copy()
    growing["comparisons"] += np.arange(len(growing))
    assert not lifetime_cost_linear([phase, dataclasses.replace(phase, comm=growing)])


@pytest.fixture(scope="module")
def small_learner():
    return pretrained_learner(3, CFG, pretrain_episodes=16)


def test_a_nudge_moves_every_weight_by_one_fixed_point_step(small_learner):
    before = {name: getattr(small_learner, name).flat.clone() for name in NETWORKS}
    a, b = nudged_learner(small_learner, 18, 0), nudged_learner(small_learner, 18, 1)
    for name in NETWORKS:
        step = (getattr(a, name).flat - before[name]).numpy()
        np.testing.assert_allclose(np.abs(step), 2.0 ** -18, rtol=1e-2)     # float32 rounding of w + 2^-18
        assert 0.4 < (step > 0).mean() < 0.6                                  # random directions ...
        assert (np.sign(step) != np.sign((getattr(b, name).flat - before[name]).numpy())).any()  # ... per nudge
        assert getattr(small_learner, name).flat.equal(before[name])          # the learner itself is untouched


def test_the_null_is_measured_on_the_secure_runs_own_ede_twin(phase):
    """The null's un-nudged run is the secure phase's plaintext twin: the frozen learner's distance from
    it equals the distance between the same starting weights and the phase's EDE weights."""
    learner = pretrained_learner(phase.seed, CFG, pretrain_episodes=16)
    null = nudge_null(learner, phase.iterations, 18, nudges=2)
    start = {(name, p): [x.numpy() for x in getattr(learner, name).select(p)] for p in (0, 1) for name in NETWORKS}
    frozen = weight_table(start, phase.plain_weights)["rmse"].max()
    assert list(null["nudge"]) == [0, 1] and (null["frozen_weight_rmse"] == frozen).all()
    assert (null["max_weight_rmse"] > 0).all() and (null["max_weight_rmse"] < frozen).all()


def test_a_coarser_fixed_point_step_gives_a_wider_null(small_learner):
    fine, coarse = (nudge_null(small_learner, 4, bits, nudges=2)["max_weight_rmse"] for bits in (20, 10))
    assert (coarse > 100 * fine.max()).all()


def _record(phase, full) -> tuple[ResultRecord, dict]:
    """The chapter's record filled from one short phase, its null and the given full-scale run."""
    P = SimpleNamespace(secure_iterations=phase.iterations, precision_bits=18, hidden=16, batch_size=16)
    learner = pretrained_learner(phase.seed, CFG, pretrain_episodes=16)
    null = nudge_null(learner, phase.iterations, P.precision_bits, NUDGES)
    overhead, _ = overhead_tables([phase])
    ma = moving_averages([phase], window=3)
    scaling = pd.DataFrame({"hidden": [8, 16, 16], "batch": [16, 16, 8], "mbytes": [1.0, 2.0, 1.5]})
    record = ResultRecord("08_secure_maddpg", vars(P))
    cost = cost_summary([phase])
    fill_record(record, metric_averages([phase]), weights_by_network([phase]), ma, moving_average_errors(ma),
                overhead, cost, null, scaling, P, full)
    return record, add_claims(record, P, overhead, cost, scaling, full)


def test_every_declared_claim_is_decided_from_the_chapters_metrics(phase):
    record, verdicts = _record(phase, full_scale_run(FULL_RECORD))
    assert list(verdicts) == [c.id for c in SPECS["08_secure_maddpg"].claims]
    assert record.metrics["lifetime_cost_increments"]["value"] == phase.iterations - 1
    assert record.metrics["mbytes_per_iteration_largest_hidden"]["value"] == 2.0
    assert record.metrics["mbytes_per_iteration_smallest_batch"]["value"] == 1.5
    entry = next(c for c in record.claims if c["id"] == "theorem1_linear_in_iterations")
    assert entry["first_verdict"] and entry["first_rule"] != entry["rule"]


def test_a_full_scale_null_from_another_ede_run_decides_nothing(phase, tmp_path):
    """A null whose un-nudged replay is not the record's EDE run (other arithmetic) gives no headroom; the
    same null marked as the run's own is weighed."""
    committed = json.loads(FULL_RECORD.read_text())
    verdicts = {}
    for name, replay_diff in (("sibling", 4.1), ("own", 0.0)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**committed, "nudge_null_replay_metric_diff": replay_diff}))
        record, decided = _record(phase, full_scale_run(path))
        verdicts[name] = decided["secure_equivalent_to_ede_800_iterations"]
        assert (record.metrics["full_scale_null_headroom"]["value"] > 1) == (name == "own")
    assert verdicts["sibling"] == "not measurable" != verdicts["own"]
    assert full_scale_run(tmp_path / "missing.json") is None


def test_network_check_table_sets_measured_beside_modelled(tmp_path):
    from ppal_lab.chapters.ch08_secure_maddpg import network_check_table

    def row(name, rtt, measured, model, call_model):
        return {"network": name, "rtt_s": rtt, "measured_s": measured, "model_s": model,
                "relative_error": model / measured - 1, "call_model_s": call_model,
                "call_model_error": call_model / measured - 1}

    record = {"floor": [{"network": n, "echo_rtt_median_s": e} for n, e in (("undelayed", 6e-5), ("slow", 0.0104))],
              "network_check": [row("undelayed", 0.0, 1.0, 1.1, 1.0), row("slow", 0.01, 8.0, 6.0, 8.4)]}
    path = tmp_path / "net.json"
    path.write_text(json.dumps(record))
    table = network_check_table(path).set_index("network")
    assert list(table.index) == ["undelayed", "slow"]
    assert table.loc["slow", "model error (%)"] == -25.0            # 6 s modelled for 8 s measured
    assert table.loc["slow", "per-call model error (%)"] == 5.0
    assert table.loc["slow", "echo round trip (ms)"] == 10.4
    assert table.loc["undelayed", "measured (s / iteration)"] == 1.0
    assert not table.isna().any().any()
    assert network_check_table(tmp_path / "missing.json") is None


def test_network_check_values_read_the_slowest_network(tmp_path):
    from ppal_lab.chapters.ch08_secure_maddpg import network_check_values

    rows = [{"network": n, "rtt_s": r, "relative_error": e, "call_model_error": c, "measured_s": m}
            for n, r, e, c, m in (("fast", 0.0005, 0.1, 0.0, 1.0), ("slow", 0.01, -0.4, 0.1, 8.0))]
    floor = [{"network": "fast", "opening_round_trips": 2.7, "request_round_trips": 10.0},
             {"network": "slow", "opening_round_trips": 2.0, "request_round_trips": 4.3}]
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"network_check": rows, "floor": floor, "args": {"iterations": 6}}))
    v = network_check_values(path)
    assert v == {"net_rtt_ms": 10.0, "net_model_error": -0.4, "net_call_model_error": 0.1,
                 "net_opening_round_trips": 2.0, "net_request_round_trips": 4.3, "net_iterations": 6,
                 "net_measured_s": 8.0}
    rows[1]["measured_s"] = 4.0     # the batched run, and the same check with one request per tuple
    path.write_text(json.dumps({"network_check": rows, "floor": floor, "args": {"iterations": 6},
                                "one_request_per_tuple": {"network_check": [dict(rows[1], measured_s=12.0)]}}))
    v = network_check_values(path)
    assert v["net_measured_s"] == 4.0 and v["net_unbatched_s"] == 12.0
    assert network_check_values(tmp_path / "missing.json") == {}


# ---- the notebook's tables, texts and figures ----------------------------------------------------------------
def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_overhead_and_scaling_tables_put_one_seed_or_configuration_a_column():
    from ppal_lab.chapters.ch08_secure_maddpg import OVERHEAD_COLUMNS, SCALING_COLUMNS, overhead_table, scaling_table

    overhead = pd.DataFrame({c: [1.0, 2.0] for c in OVERHEAD_COLUMNS + ["extra"]}, index=pd.Index([0, 1], name="seed"))
    overhead.loc[1, "rounds"] = 77
    table = overhead_table(overhead)
    assert list(table.columns) == [0, 1] and list(table.index) == OVERHEAD_COLUMNS
    assert table.loc["rounds", 1] == 77
    scaling = pd.DataFrame({"hidden": [32, 64], "batch": [128, 128], "total_ms": [3.0, 4.0],
                            **{c: [1.0, 5.0] for c in SCALING_COLUMNS}})
    table = scaling_table(scaling)
    assert list(table.columns) == [(32, 128), (64, 128)] and "total_ms" not in table.index
    assert table.loc["comparisons", (64, 128)] == 5.0


def test_cost_summary_text_and_full_scale_text():
    from ppal_lab.chapters.ch08_secure_maddpg import cost_summary_text, full_scale_text

    cost = {"mean": 0.021, "ci": (-0.01, 0.052), "linear": True, "iterations": 120, "distinct": 1}
    lines = cost_summary_text(cost, 3).splitlines()
    assert lines == ["change of the per-iteration time over the phase (fitted line): +2.1% (95% CI -1.0% to +5.2%)",
                     "counted cost of the first n iterations grows by equal increments after the first: True",
                     "distinct per-iteration operation counts over 120 iterations of 3 seeds: 1"]
    assert full_scale_text({"text": "measured."}) == "measured."
    assert "has not been measured" in full_scale_text(None)


def test_plot_moving_averages_draws_three_panels_of_one_seed_and_a_legend_panel():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters.ch08_secure_maddpg import plot_moving_averages

    ma = pd.DataFrame([{"seed": s, "metric": m, "iteration": i, "ede": 1.0 * i, "secure": 1.0 * i + 0.01}
                       for s in (0, 1) for m in ("total_reward", "reward_0", "reward_1", "ncr") for i in range(4)])
    fig = plot_moving_averages(ma, seed=1)
    axes = fig.get_axes()
    assert len(axes) == 4 and fig.get_figwidth() <= 7.5
    assert [ax.get_title() for ax in axes[:3]] == ["Total reward, seed 1", "Player 0's reward, seed 1",
                                                   "Player 1's reward, seed 1"]
    assert all(len(ax.lines) == 2 and len(ax.lines[0].get_xdata()) == 4 for ax in axes[:3])
    assert _legend_texts(axes[3]) == ["EDE (plaintext)", "Secure 2PC"] and not axes[3].axison
    plt.close(fig)


def test_plot_time_split_has_one_bar_per_part_in_words():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters.ch08_secure_maddpg import plot_time_split

    phase_ms = pd.DataFrame({"acting": [2.0, 4.0], "env": [1.0, 1.0], "update": [5.0, 7.0],
                             "comparisons": [3.0, 3.0], "dealer": [1.0, 2.0], "other": [9.0, 9.0]})
    fig = plot_time_split(phase_ms)
    (ax,) = fig.get_axes()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["acting (secure actors)", "game step", "update (secure)",
                                                            "of which comparisons", "of which dealer waits"]
    assert [p.get_width() for p in ax.patches] == [3.0, 1.0, 6.0, 3.0, 1.5]  # means over the seeds
    assert ax.get_title() == "Where a secure iteration's time goes" and fig.get_figwidth() <= 7.5
    plt.close(fig)


def test_plot_scaling_holds_the_other_dimension_at_the_base_setting():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters.ch08_secure_maddpg import plot_scaling

    scaling = pd.DataFrame({"hidden": [32, 64, 128, 128], "batch": [128, 128, 128, 32],
                            "online_ms": [1.0, 2.0, 4.0, 3.0], "total_ms": [2.0, 3.0, 5.0, 4.0],
                            "plain_ms": [0.1, 0.2, 0.3, 0.25]})
    fig = plot_scaling(scaling, hidden=128, batch_size=128)
    top, bottom = fig.get_axes()
    assert list(top.lines[0].get_xdata()) == [32, 64, 128] and list(bottom.lines[0].get_xdata()) == [32, 128]
    assert top.get_xlabel() == "hidden units" and bottom.get_xlabel() == "minibatch rows"
    assert _legend_texts(top) == ["secure, online", "secure, online + dealer waits", "plaintext EDE"]
    assert bottom.get_legend() is None and top.get_yscale() == "log" and fig.get_figwidth() <= 7.5
    plt.close(fig)


def test_plot_cost_per_iteration_draws_one_series_per_seed_in_ms():
    import matplotlib.pyplot as plt

    from ppal_lab.chapters.ch08_secure_maddpg import plot_cost_per_iteration

    phases = [SimpleNamespace(seed=3, secure_s=np.array([0.01, 0.02, 0.03])),
              SimpleNamespace(seed=4, secure_s=np.array([0.5, 0.5]))]
    fig = plot_cost_per_iteration(phases)
    (ax,) = fig.get_axes()
    assert len(ax.lines) == 2 and np.allclose(ax.lines[0].get_ydata(), [10.0, 20.0, 30.0])
    assert _legend_texts(ax) == ["seed 3", "seed 4"] and ax.get_title() == "Secure cost per iteration"
    plt.close(fig)


def test_precision_sweep_reports_one_row_per_precision():
    from ppal_lab.chapters.ch08_secure_maddpg import precision_sweep

    table = precision_sweep(5, bits=(10, 20), iterations=2, pretrain_episodes=4)
    assert list(table.index) == [10, 20] and list(table.columns) == ["max weight RMSE", "retries", "online ms"]
    # 10 fractional bits are far coarser than 20: the secure weights end further from EDE's
    assert table.loc[10, "max weight RMSE"] > table.loc[20, "max weight RMSE"]
    assert (table["online ms"] > 0).all()
