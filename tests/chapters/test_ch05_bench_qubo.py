"""benchmarks/bench_qubo.py at a tiny size: a valid record whose targets are the known optima."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

from ppal_lab.optimize import instances as inst

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_qubo", ROOT / "benchmarks" / "bench_qubo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.timeout(300)
def test_tiny_benchmark_writes_a_record_with_known_targets(tmp_path):
    out = tmp_path / "bench.json"
    assert _bench().main(["--tiny", "--solvers", "bsb", "sa", "random", "greedy", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["machine"]["torch_threads"] == 1
    assert all(p["threads"] == 1 for p in rec["machine"]["thread_pools"])
    assert isinstance(rec["machine"]["loaded"], bool)
    kinds = {i["instance"]: i["target_kind"] for i in rec["instances"]}
    assert kinds["planted n=40 alpha=1"] == "planted" and kinds["sk n=16"] == "exact"
    assert kinds["mrmr breast-cancer n=30"] == "certified"
    planted = next(i for i in rec["instances"] if i["family"] == "planted")
    assert planted["target_energy"] == pytest.approx(inst.wishart_planted(40, 1.0, 0).energy)
    for i in rec["instances"]:
        assert set(i["solvers"]) >= {"bsb", "sa", "random"}
        assert ("greedy" in i["solvers"]) == (i["family"] in ("mrmr", "densest"))
        for r in i["solvers"].values():
            # nobody beats a known optimum; TTS is finite exactly when some run succeeded
            assert r["best_energy"] >= i["target_energy"] - 1e-9
            assert (r["tts99_s"] is not None) == (r["successes"] > 0)
            assert r["successes"] == 0 or r["tts99_s"] >= r["median_run_s"] - 1e-12
        for v in i["tts_ratio_ours_over_peer"].values():
            assert v is None or v == "inf" or (isinstance(v, float) and not math.isnan(v))


def test_bad_arguments_are_refused_before_any_run(tmp_path):
    from ppal_lab.compendium.errors import ParameterError

    with pytest.raises(ParameterError, match="budget_s"):
        _bench().main(["--budget-s", "0", "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


@pytest.mark.timeout(300)
def test_chapter_reads_the_tts_record_and_refuses_a_loaded_or_missing_one(tmp_path):
    from ppal_lab.chapters import ch05_qubo_feature_selection as fx
    from ppal_lab.compendium import ResultRecord
    from ppal_lab.compendium.specs import SPECS

    out = tmp_path / "bench.json"
    _bench().main(["--tiny", "--planted-sizes", "100", "500", "1000", "--solvers", "bsb", "sa", "random",
                   "--sk-sizes", "--mrmr-sizes", "--densest-sizes", "--out", str(out)])
    rec = json.loads(out.read_text())
    claims = [c for c in SPECS["05_qubo_feature_selection"].claims if c.id in ("qubo_goal_peers_time",
                                                                                "qubo_goal_n1000_time")]
    # a table where every planted bed discriminates, read on an idle machine and on a loaded one
    for i in rec["instances"]:
        i["discriminates"], i["headroom_trivial_over_best_tts"] = i["n"] != 500, 10.0 if i["n"] != 500 else 1.0
    rec["instances"].append(dict(rec["instances"][1], discriminates=True, headroom_trivial_over_best_tts="inf"))
    for loaded in (True, False):
        rec["machine"]["loaded"] = loaded
        out.write_text(json.dumps(rec))
        record = ResultRecord("05_qubo_feature_selection", {})
        said = fx.tts_metrics(record, out)
        assert record.metrics["tts_bench_valid"]["value"] == float(not loaded)
        verdicts = record.decide_claims(claims, {c.id: said["planted"] for c in claims})
        if loaded:
            assert set(verdicts.values()) == {"not measurable"}
            assert "tts_log_ratio_worst_planted" not in record.metrics
        else:
            assert record.metrics["tts_headroom_planted"]["value"] == 10.0
            # the n = 1000 TTS is ours, read from the table's discriminating n = 1000 instance
            big = rec["instances"][2]["solvers"]["bsb"]
            assert record.metrics["tts99_n1000_ours_s"]["value"] == pytest.approx(min(big["tts99_s"] or 1e6, 1e6))
            assert "not measurable" not in verdicts.values()
    record = ResultRecord("05_qubo_feature_selection", {})
    assert "missing" in fx.tts_metrics(record, tmp_path / "absent.json")["planted"]
    assert record.metrics["tts_headroom_planted"]["value"] == 0.0
