"""Result records: schema, confidence intervals and atomic writes."""
import json
import os

import jsonschema
import numpy as np
import pytest
from scipy import stats

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.results import ResultRecord, load_record, mean_ci, validate_record, write_json_atomic
from ppal_lab.compendium.verdicts import Claim


def test_mean_ci_matches_scipy_t_interval():
    x = [0.80, 0.84, 0.79, 0.83, 0.86]
    mean, (lo, hi), n = mean_ci(x)
    ref = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert n == 5 and mean == pytest.approx(np.mean(x))
    assert (lo, hi) == pytest.approx(ref)


def test_mean_ci_single_value_and_bad_input():
    assert mean_ci([0.5]) == (0.5, None, 1)
    with pytest.raises(ParameterError):
        mean_ci([])
    with pytest.raises(ParameterError):
        mean_ci([1.0, float("nan")])


def test_record_round_trip_and_schema(tmp_path):
    rec = ResultRecord("07_example_chapter", {"seed": 3, "epsilon": 1.0})
    rec.add_metric("accuracy", [0.8, 0.82, 0.81], unit="fraction", description="test accuracy")
    rec.add_metric("wall_time_per_round", 0.25, unit="s")
    rec.add_metric("label_saving", [0.40, 0.42, 0.41], unit="fraction")
    verdicts = rec.decide_claims([Claim("al_label_saving", "000", "AL cuts labels by 73%", "73%", "effect",
                                        metric="label_saving", target=0.73)], {"al_label_saving": "41%"})
    path = rec.write(tmp_path)
    data = load_record(path)
    assert path.name == "07_example_chapter.json"
    assert data["seed"] == 3 and data["metrics"]["accuracy"]["n"] == 3
    assert data["metrics"]["wall_time_per_round"]["ci95"] is None
    assert set(data["versions"]) >= {"python", "numpy", "torch", "scikit-learn", "opacus", "crypten"}
    assert data["versions"]["torch"].startswith("2.13.0")
    assert verdicts == {"al_label_saving": "partly"} and data["claims"][0]["n"] == 3
    assert data["metrics"]["seeds_needed_al_label_saving"]["value"] == 2  # a tiny spread: two seeds decide


def test_every_claim_is_decided_by_the_engine_and_described():
    rec = ResultRecord("07_example_chapter", {"seed": 0})
    rec.add_metric("holds", 1.0, unit="0/1")
    claims = [Claim("q", "000", "s", "holds", "qualitative", metric="holds")]
    assert not hasattr(rec, "add_claim")  # no verdict is set by hand
    with pytest.raises(ParameterError, match="measured"):
        rec.decide_claims(claims, {})


@pytest.mark.parametrize("mutate", [
    lambda r: r.pop("metrics"),
    lambda r: r["metrics"]["acc"].update(ci95=[0.1]),
    lambda r: r["claims"].append({"id": "x"}),
    lambda r: r.update(notebook="Bad Name"),
])
def test_schema_rejects_malformed_records(mutate, tmp_path):
    rec = ResultRecord("07_example_chapter", {"seed": 0})
    rec.add_metric("acc", [0.1, 0.2], unit="fraction")
    record = json.loads(json.dumps(rec.to_dict()))
    validate_record(record)
    mutate(record)
    with pytest.raises(jsonschema.ValidationError):
        validate_record(record)


def test_atomic_write_leaves_old_file_when_serialisation_fails(tmp_path):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(target, {"a": float("nan")})  # NaN is not valid JSON
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left behind


def test_add_metric_accepts_an_interval_computed_elsewhere():
    rec = ResultRecord("x", {})
    entry = rec.add_metric("saving", 0.3, "fraction", "bootstrap", ci=(0.1, 0.5), n=7)
    assert entry["value"] == 0.3 and entry["ci95"] == [0.1, 0.5] and entry["n"] == 7
    for bad in ({"ci": (0.5, 0.1), "n": 7}, {"ci": (0.1, float("nan")), "n": 7}, {"ci": (0.1, 0.5)},
                {"ci": (0.1, 0.5), "n": 1}):
        with pytest.raises(ParameterError):
            rec.add_metric("saving", 0.3, "fraction", **bad)
    with pytest.raises(ParameterError):
        rec.add_metric("saving", [0.3, 0.4], "fraction", ci=(0.1, 0.5), n=2)


def test_an_atomically_written_record_has_the_mode_of_any_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644          # not mkstemp's 0600
