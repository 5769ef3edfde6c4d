"""Same parameters, same numbers: each chapter's notebook run twice at a reduced size gives identical
records (wall times aside), whatever the worker processes. ``ppal-lab reproduce`` does the same at the
defaults (``make repro``)."""
import json

import pytest

from ppal_lab.compendium.reproduce import compare_records
from ppal_lab.compendium.specs import SPECS

# Reduced sizes: every code path of the chapter, a few seconds of work. Chapter 07 trains in worker
# processes: its second run uses another number of them.
REDUCED = {
    "01_supply_chain_data": {"n_seeds": 2, "n_items": 600, "n_per_month": 500},
    "02_active_learning": {"n_seeds": 2, "n_items": 600, "label_budget": 60, "initial_labels": 10},
    "03_sparsity": {"n_seeds": 1, "n_pool": 1000, "n_test": 500, "n_labels": 60, "dp_steps": 50,
                    "n_trials": 200},
    "04_continual_learning": {"n_seeds": 2, "n_per_month": 500, "n_labels": 30, "n_test": 100, "n_val": 100,
                              "epochs": 2, "n_lambdas": 1},
    "05_qubo_feature_selection": {"n_seeds": 2, "n_instances": 4, "peer_seeds": 1, "n_agents": 8},
    "06_secret_sharing": {"n_seeds": 2, "n_sharings": 1000, "n_circuits": 5, "n_inputs": 50},
    "07_supply_chain_maddpg": {"n_seeds": 2, "episodes": 2, "pretrain_episodes": 16, "hidden": 16,
                               "batch_size": 16, "n_jobs": 1},
    "08_secure_maddpg": {"n_seeds": 2, "secure_iterations": 2, "pretrain_episodes": 8, "hidden": 8,
                         "batch_size": 16, "scaling_hidden": ["8"], "scaling_batch": ["8"],
                         "scaling_iterations": 2},
    "09_inverse_simulation": {"n_seeds": 2, "n_items": 300, "n_secure": 16, "label_budget": 60,
                              "batch_size": 10, "verifier_labels": 60},
    "10_adversarial_participants": {"n_seeds": 2, "n_clients": 8, "rounds": 2, "n_logs": 5, "n_target": 40,
                                    "mi_epochs": 1},
    "11_secure_infrastructure": {"n_seeds": 2, "n_items": 1000, "n_sites": 5, "update_dim": 1280},
}
SECOND_RUN = {"07_supply_chain_maddpg": {"n_jobs": 2}}


def test_every_chapter_has_a_reduced_size():
    assert sorted(REDUCED) == sorted(SPECS)
    for name, params in REDUCED.items():
        SPECS[name].validate(params)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REDUCED))
def test_two_runs_give_identical_records(name, tmp_path):
    from ppal_lab.compendium import runner

    spec = SPECS[name]
    first = runner.run(spec, REDUCED[name], tmp_path / "first", progress=False).record
    second = runner.run(spec, {**REDUCED[name], **SECOND_RUN.get(name, {})}, tmp_path / "second",
                        progress=False).record
    second["parameters"] = first["parameters"]
    assert compare_records(spec, first, second, exact=True) == []
    figures = sorted(p.name for p in (tmp_path / "first" / "figures").glob("*"))
    assert figures == sorted(p.name for p in (tmp_path / "second" / "figures").glob("*"))
