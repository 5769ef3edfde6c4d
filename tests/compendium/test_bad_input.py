"""Every bad input is refused cleanly, before any work: ``ppal-lab run``/``sweep`` exit 2 with one line
on stderr naming the parameter, the value and the allowed range; no kernel starts and nothing is written.
A notebook that still fails in its kernel exits 1 with one line and leaves nothing behind. The declared
constraints agree with the chapters' own run-time checks and with the data they describe."""
import subprocess
import sys

import nbformat
import pytest

from ppal_lab.compendium import cli, runner, specs
from ppal_lab.compendium.specs import ch01_supply_chain_data as ch01_spec
from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.params import NotebookSpec, Param
from ppal_lab.compendium.specs import SPECS

TOO_BIG_SEED = str(2**32 - 2)

# (arguments, a parameter name the one line must contain); --out <tmp>/out is added unless given
BAD = [
    (["run", "01", "-p", "missing_rate", "0.99999"], "missing_rate"),
    (["run", "01", "-p", "missing_mechanism", "mar", "-p", "missing_rate", "0.97", "-p", "n_per_month", "100"],
     "missing_rate"),
    (["run", "01", "-p", "seed", TOO_BIG_SEED], "seed"),
    (["run", "01", "-p", "label_rate", "0"], "label_rate"),
    (["run", "02", "-p", "label_budget", "5000"], "label_budget"),
    (["run", "02", "-p", "n_participants", "30", "-p", "initial_labels", "20"], "n_participants"),
    (["run", "02", "-p", "dataset", "wine"], "dataset"),
    (["run", "02", "-p", "real_dataset", "wine"], "real_dataset"),
    (["run", "02", "-p", "initial_labels", "5"], "initial_labels"),
    (["run", "02", "-p", "label_budget", "20"], "label_budget"),
    (["run", "02", "-p", "n_items", "100"], "n_items"),
    (["run", "02", "-p", "epsilon", "0"], "epsilon"),
    (["run", "03", "-p", "n_pool", "100"], "n_pool"),
    (["run", "03", "-p", "n_initial", "30", "-p", "n_labels", "25"], "n_initial"),
    (["run", "03", "-p", "dp_batch_size", "20000"], "dp_batch_size"),
    (["run", "03", "-p", "missing_rate", "0.99"], "missing_rate"),
    (["run", "03", "-p", "epsilon", "0.005"], "epsilon"),
    (["run", "03", "-p", "n_labels", "1"], "n_labels"),
    (["run", "03", "-p", "n_labels", "1199"], "n_labels"),
    (["run", "03", "-p", "bed_missing_rate", "1.0"], "bed_missing_rate"),
    (["run", "04", "-p", "n_labels", "800"], "n_labels"),
    (["run", "04", "-p", "n_test", "30000"], "n_test"),
    (["run", "04", "-p", "lambda_max", "0.5"], "lambda_max"),
    (["run", "05", "-p", "n_instances", "3"], "n_instances"),
    (["run", "05", "-p", "seed", TOO_BIG_SEED], "seed"),
    (["run", "05", "-p", "k", "50"], "k"),
    (["run", "06", "-p", "t", "3"], "n_parties"),
    (["run", "06", "-p", "modulus", "15"], "modulus"),
    (["run", "06", "-p", "small_modulus", "4"], "small_modulus"),
    (["run", "06", "-p", "small_modulus", "3"], "small_modulus"),
    (["run", "06", "-p", "modulus", "5"], "modulus"),
    (["run", "06", "-p", "t", "4", "-p", "n_parties", "9"], "n_sharings"),
    (["run", "06", "-p", "t", "5", "-p", "n_parties", "11", "-p", "small_modulus", "17"], "small_modulus"),
    (["run", "07", "-p", "pretrain_episodes", "0", "-p", "episodes", "1"], "batch_size"),
    (["run", "07", "-p", "seed", TOO_BIG_SEED], "seed"),
    (["run", "07", "-p", "gamma", "1"], "gamma"),
    (["run", "08", "-p", "seed", TOO_BIG_SEED], "seed"),
    (["run", "08", "-p", "world_size", "3"], "world_size"),
    (["run", "08", "-p", "scaling_hidden", "32,33"], "scaling_hidden"),
    (["run", "09", "-p", "n_items", "200", "-p", "n_secure", "300"], "n_secure"),
    (["run", "09", "-p", "anomaly_kinds", "sensor_fault,sensor_fault"], "anomaly_kinds"),
    (["run", "09", "-p", "anomaly_rate", "0.01"], "anomaly_rate"),
    (["run", "09", "-p", "label_budget", "1600"], "label_budget"),
    (["run", "09", "-p", "batch_size", "500"], "batch_size"),
    (["run", "10", "-p", "aggregator", "median", "-p", "byzantine_fraction", "0.5"], "byzantine_fraction"),
    (["run", "10", "-p", "aggregator", "bulyan", "-p", "byzantine_fraction", "0.3"], "n_clients"),
    (["run", "10", "-p", "aggregator", "krum", "-p", "byzantine_fraction", "0.45"], "n_clients"),
    (["run", "10", "-p", "aggregator", "mean"], "aggregator"),
    (["run", "10", "-p", "attack", "backdoor"], "attack"),
    (["run", "10", "-p", "attack", "alie", "-p", "aggregator", "fedavg", "-p", "byzantine_fraction", "0.6"],
     "byzantine_fraction"),
    (["run", "10", "-p", "n_target", "900"], "n_target"),
    (["run", "11", "-p", "n_sites", "10", "-p", "dropout_rate", "0.5"], "dropout_rate"),
    (["run", "11", "-p", "n_sites", "2", "-p", "dropout_rate", "0.3"], "dropout_rate"),
    (["run", "11", "-p", "n_sites", "1"], "n_sites"),
    (["run", "11", "-p", "n_items", "150"], "n_items"),
    (["run", "11", "-p", "n_items", "1000", "-p", "coverage", "0.5"], "n_items"),
    (["run", "11", "-p", "update_dim", "1000"], "update_dim"),
    (["run", "11", "-p", "epsilon", "0"], "epsilon"),
    (["run", "02", "-p", "epsilon", "1", "--out", "/proc/nope"], "--out"),
    (["run", "01", "--out", __file__ + "/out"], "--out"),
    (["sweep", "01", "-p", "missing_rate", "0.5,0.99999"], "missing_rate"),
    (["sweep", "02", "-p", "dataset", "remanufacturing,wine"], "dataset"),
    (["sweep", "06", "-p", "t", "1,2,3"], "n_parties"),
    (["sweep", "01", "-p", "seed", "0,1", "--out", "/proc/nope"], "--out"),
]


@pytest.fixture
def no_kernel(monkeypatch, tmp_path):
    """Fail the test if a kernel would start; send default outputs to an empty runs/ of our own."""
    def kernel(*args, **kwargs):
        raise AssertionError("a kernel was started for bad input")

    monkeypatch.setattr(runner, "_execute_locked", kernel)
    monkeypatch.setattr(runner, "ProcessPoolExecutor", None)   # a sweep must not start either
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(runner, "runs_dir", lambda: runs)
    return runs


@pytest.mark.parametrize("args, name", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(args, name, tmp_path, capsys, no_kernel):
    out = tmp_path / "out"
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppal-lab: error: ") and name in lines[0], captured.err
    assert " is invalid: must be " in lines[0] and not captured.out
    assert not out.exists() and not any(no_kernel.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]   # no hidden temporary folder either


def test_the_table_covers_every_chapter():
    assert {specs.resolve(args[1]).name for args, _ in BAD} == set(SPECS)
    assert len(BAD) >= 30


def test_without_out_nothing_is_written_to_runs(capsys, no_kernel):
    for args in (["run", "02", "-p", "dataset", "wine"], ["sweep", "01", "-p", "missing_rate", "0.5,0.99999"]):
        assert cli.main(args) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not any(no_kernel.iterdir())


@pytest.mark.parametrize("args", [["run", "02", "-p", "label_budget", "5000"],
                                  ["run", "02", "-p", "epsilon", "1", "--out", "/proc/nope"]])
def test_bad_input_from_the_shell(args, tmp_path):
    out = tmp_path / "out"
    extra = [] if "--out" in args else ["--out", str(out)]
    res = subprocess.run([sys.executable, "-m", "ppal_lab.compendium.cli", *args, *extra], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_notebook_failing_in_its_kernel_gives_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """A stand-in chapter that writes a figure, then raises: exit 1, one line naming the notebook, the
    cell (index in the committed notebook) and the error; no --out folder, no runs/ entry, no figure."""
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os, pathlib\n"
                                          "fig = pathlib.Path(os.environ['PPAL_OUTPUT_DIR']) / 'figures'\n"
                                          "fig.mkdir(parents=True)\n(fig / 'partial.png').write_text('x')"),
                nbformat.v4.new_markdown_cell("the next cell fails"),
                nbformat.v4.new_code_cell("raise ValueError(f'x = {x} is too much')")]
    nbformat.write(nb, root / "notebooks" / "99_fails.ipynb")
    monkeypatch.setenv("PPAL_ROOT", str(root))
    monkeypatch.setitem(SPECS, "99_fails", NotebookSpec("99_fails", "fails", (Param("x", int, 1, "x", low=0),)))
    out = tmp_path / "out"
    for extra in (["--out", str(out)], []):
        assert cli.main(["run", "99_fails", "-p", "x", "2", "-q", *extra]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1] == ("ppal-lab: error: 99_fails.ipynb failed in cell 3: ValueError: x = 2 is too much "
                             "(nothing was written)"), lines
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    assert sorted(p.name for p in root.iterdir()) == ["notebooks"]


# ------------------------------------------------------------------ constraints match the real code and data
def test_constant_data_set_sizes_match_the_loaders():
    from ppal_lab.chapters import ch02_active_learning as al_experiments
    from ppal_lab import data
    from ppal_lab.marl.supply_game import GameConfig

    assert specs.SKLEARN_SIZES == {n: data.load_sklearn(n).n_items for n in data.SKLEARN_DATASETS}
    assert specs.SKLEARN_SIZES == al_experiments._SKLEARN_SIZES
    assert specs.GAME_HORIZON == GameConfig().horizon


def _refused(fn, *args, **kwargs) -> bool:
    try:
        fn(*args, **kwargs)
    except ParameterError:
        return True
    return False


def _spec_refuses(name, values) -> bool:
    return _refused(SPECS[name].validate, values)


@pytest.mark.parametrize("dataset, real, n_items, test_fraction, budget, initial, sites", [
    ("remanufacturing", "wine", 4000, 0.25, 133, 20, 4), ("remanufacturing", "wine", 4000, 0.25, 134, 20, 4),
    ("wine", "breast_cancer", 4000, 0.5, 89, 20, 4), ("wine", "breast_cancer", 4000, 0.5, 90, 20, 4),
    ("remanufacturing", "digits", 200, 0.3, 139, 20, 4), ("remanufacturing", "digits", 200, 0.3, 140, 20, 4),
    ("digits", "digits", 4000, 0.25, 30, 30, 4), ("digits", "digits", 4000, 0.25, 30, 12, 13),
])
def test_chapter_02_constraints_match_its_own_check(dataset, real, n_items, test_fraction, budget, initial, sites):
    from ppal_lab.chapters import ch02_active_learning as E

    values = dict(dataset=dataset, real_dataset=real, n_items=n_items, test_fraction=test_fraction,
                  label_budget=budget, initial_labels=initial, n_participants=sites)
    assert _spec_refuses("02_active_learning", values) == _refused(
        E.validate_setup, [dataset, real], n_items=n_items, test_fraction=test_fraction, label_budget=budget,
        batch_size=10, initial_labels=initial, n_participants=sites)


@pytest.mark.parametrize("n_pool, n_labels, n_initial, dp_batch", [
    (1000, 1000, 20, 50), (1000, 1001, 20, 50), (1000, 40, 40, 50), (1000, 40, 41, 50), (1000, 200, 20, 1001),
    (5000, 1198, 20, 50), (5000, 1199, 20, 50)])
def test_chapter_03_constraints_match_its_own_check(n_pool, n_labels, n_initial, dp_batch):
    from ppal_lab.learning import acquisition as aq
    from ppal_lab.compendium.errors import check_range

    def own():
        aq.check_acquisition_parameters(n_pool, n_labels, n_initial, 20)
        aq.check_acquisition_parameters(aq.DIGITS_POOL_SIZE, n_labels, n_initial, 20)
        check_range("dp_batch_size", dp_batch, 1, n_pool)

    values = dict(n_pool=n_pool, n_labels=n_labels, n_initial=n_initial, dp_batch_size=dp_batch, missing_rate=0.0)
    assert _spec_refuses("03_sparsity", values) == _refused(own)


@pytest.mark.parametrize("n_per_month, n_labels, n_test, lo, hi", [
    (1000, 60, 2000, 1.0, 10.0), (1000, 61, 2000, 1.0, 10.0), (1000, 60, 2940, 1.0, 10.0),
    (1000, 60, 2941, 1.0, 10.0), (975, 57, 100, 1.0, 10.0), (975, 60, 100, 1.0, 10.0), (1000, 60, 100, 2.0, 1.0),
    (1000, 60, 2890, 1.0, 10.0), (1000, 60, 2891, 1.0, 10.0)])
def test_chapter_04_constraints_match_its_own_check(n_per_month, n_labels, n_test, lo, hi):
    from ppal_lab.learning import continual

    n_val = 50      # validation drives come out of the same unlabelled drives as the test drives

    def own():
        continual.check_settings(n_per_month, n_labels, n_test + n_val)
        continual.lambda_grid(lo, hi, 4)

    values = dict(n_per_month=n_per_month, n_labels=n_labels, n_test=n_test, n_val=n_val, lambda_min=lo,
                  lambda_max=hi)
    assert _spec_refuses("04_continual_learning", values) == _refused(own)


@pytest.mark.parametrize("t, n, modulus, small, n_sharings", [
    (2, 5, 2**61 - 1, 13, 845), (2, 5, 2**61 - 1, 13, 844), (2, 4, 2**61 - 1, 13, 20_000),
    (2, 5, 2**61 - 3, 13, 20_000), (2, 5, 2**61 - 1, 15, 20_000), (2, 5, 5, 13, 20_000), (2, 5, 7, 5, 20_000),
    (3, 7, 2**89 - 1, 11, 6655), (5, 11, 2**61 - 1, 13, 2_000_000), (5, 11, 2**61 - 1, 17, 2_000_000)])
def test_chapter_06_constraints_match_its_own_check(t, n, modulus, small, n_sharings):
    from ppal_lab.secure import shamir

    def own():   # the notebook's first cell after validation
        shamir.Shamir(t, n, modulus).check_multiplication()
        shamir.Shamir(t, n, small)
        cells = small ** t
        if cells > 10**6 or n_sharings < 5 * cells:
            raise ParameterError("n_sharings", n_sharings, "enough")

    values = dict(t=t, n_parties=n, modulus=modulus, small_modulus=small, n_sharings=n_sharings)
    assert _spec_refuses("06_secret_sharing", values) == _refused(own)


@pytest.mark.parametrize("n_items, rate, kinds, n_secure, budget, batch", [
    (2000, 0.0125, 5, 256, 400, 40), (2000, 0.012, 5, 256, 400, 40), (200, 0.2, 5, 200, 150, 40),
    (200, 0.2, 5, 201, 150, 40), (200, 0.2, 5, 16, 151, 40), (2000, 0.2, 2, 16, 400, 400),
    (2000, 0.2, 2, 16, 400, 401), (2002, 0.2, 5, 16, 1502, 40), (2002, 0.2, 5, 16, 1503, 40)])
def test_chapter_09_constraints_match_its_own_check(n_items, rate, kinds, n_secure, budget, batch):
    from ppal_lab import verify as V

    kinds = list(V.ANOMALY_KINDS[:kinds])
    values = dict(n_items=n_items, anomaly_rate=rate, anomaly_kinds=kinds, n_secure=n_secure,
                  label_budget=budget, batch_size=batch)
    assert _spec_refuses("09_inverse_simulation", values) == _refused(
        V.validate_setup, n_items, rate, kinds, 0.05, 0.85, "grid", n_sites=4, label_budget=budget,
        batch_size=batch, n_secure=n_secure)


@pytest.mark.slow
def test_chapter_01_missing_rate_limit_is_where_the_drift_model_stops_crashing():
    """At the declared limit every feature keeps observed training values; far above it a feature has
    none and scikit-learn's gradient boosting raises the error the limit prevents."""
    from ppal_lab import data
    from ppal_lab.data import describe

    values = dict(n_per_month=100, missing_mechanism="mcar")
    limit = ch01_spec._drift_missing_limit(values)
    assert not _spec_refuses("01_supply_chain_data", {**values, "missing_rate": limit})
    assert _spec_refuses("01_supply_chain_data", {**values, "missing_rate": limit + 1e-3})
    for seed in range(3):
        describe.drift_accuracy(data.make_magnet_grades(100, 3, missing_rate=limit, seed=seed), seed)
    with pytest.raises(ValueError, match="window shape"):
        describe.drift_accuracy(data.make_magnet_grades(100, 3, missing_rate=0.99999, seed=0), 0)


@pytest.mark.slow
def test_chapter_03_pool_limit_is_where_the_seed_cold_start_stops_failing():
    from ppal_lab.learning import acquisition as aq

    assert not _spec_refuses("03_sparsity", dict(n_pool=1000, missing_rate=0.8))
    assert _spec_refuses("03_sparsity", dict(n_pool=999, missing_rate=0.8, n_labels=200))
    for seed in range(3):
        aq.seed_cold_start(aq.magnet_split(seed, 1000, 100, 0.8).Z_pool, 20, seed)
    with pytest.raises(ParameterError, match="zero variance"):
        aq.seed_cold_start(aq.magnet_split(0, 100, 100, 0.95).Z_pool, 20, 0)


def test_chapter_07_batch_limit_is_where_the_critics_first_learn():
    """With exactly one minibatch of transitions the critics update once (a loss curve exists); one
    transition fewer and they never do (the notebook's loss plot then fails)."""
    from ppal_lab.chapters.ch07_supply_chain_maddpg import critic_loss_curve
    from ppal_lab.marl import maddpg
    from ppal_lab.marl.supply_game import GameConfig

    for batch, learns in ((specs.GAME_HORIZON, True), (specs.GAME_HORIZON + 1, False)):
        assert _spec_refuses("07_supply_chain_maddpg", dict(batch_size=batch, episodes=1, pretrain_episodes=0)) \
            is not learns
        learner = maddpg.MADDPG([0], ["nds"], GameConfig(), maddpg.MADDPGConfig(hidden=2, batch_size=batch))
        table = learner.train(episodes=1, pretrain_episodes=0)
        assert (len(critic_loss_curve(table, 16)) > 0) is learns
