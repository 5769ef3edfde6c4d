"""Every notebook is registered, has one papermill `parameters` cell whose defaults equal its spec,
validates them first, and is committed executed, up to date, with a valid result record."""
import ast

import nbformat
import pytest

from ppal_lab.compendium import runner
from ppal_lab.compendium.paths import notebooks_dir, repo_root
from ppal_lab.compendium.results import load_record
from ppal_lab.compendium.specs import SPECS

NOTEBOOKS = sorted(p.stem for p in notebooks_dir().glob("[0-9]*.ipynb"))


def test_every_notebook_is_registered_and_every_spec_has_a_notebook():
    assert NOTEBOOKS == sorted(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_parameters_cell_matches_spec_and_is_validated_first(name):
    nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    defaults = {}
    for node in ast.parse(code[tagged[0]].source).body:
        assert isinstance(node, ast.Assign), "the parameters cell holds assignments only"
        defaults[node.targets[0].id] = ast.literal_eval(node.value)
    assert defaults == SPECS[name].defaults()
    assert f'validate_notebook("{name}"' in code[tagged[0] + 1].source


@pytest.mark.parametrize("name", sorted(SPECS))
def test_committed_notebook_is_executed_and_up_to_date(name):
    nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in code), "every code cell executed"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    assert not runner.is_stale(SPECS[name]), "inputs changed since the last run: run `make book`"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_committed_record_is_valid(name):
    record = load_record(repo_root() / "data" / "results" / f"{name}.json")
    assert record["notebook"] == name
    assert record["parameters"] == SPECS[name].defaults()
    for metric in SPECS[name].headline:
        assert metric in record["metrics"]


def test_claims_ledger_matches_the_committed_records():
    from ppal_lab.compendium import ledger

    committed = (repo_root() / ledger.LEDGER).read_text()
    assert committed == ledger.render(ledger.chapter_records()), "run `ppal-lab book` to regenerate it"


def test_the_ledger_counts_each_verdict_and_shows_each_beds_headroom():
    from ppal_lab.compendium import ledger

    records = ledger.chapter_records()
    page = ledger.render(records)
    claims = [c for r in records for c in r["claims"]]
    for verdict in ("reproduced", "inconclusive", "not measurable"):
        assert f"| {verdict} | {sum(c['verdict'] == verdict for c in claims)} |" in page
    gated = [(r, c) for r in records for c in SPECS[r["notebook"]].claims if c.headroom]
    assert gated
    for r, c in gated:
        assert f"bed's headroom {c.headroom} = {r['metrics'][c.headroom]['value']:.4g}" in page


def test_every_committed_verdict_is_the_engines_on_the_declared_claims():
    """A record's claims are exactly its spec's declarations, each with the verdict the engine gives on the
    record's own metrics (so no verdict was set by hand or by a rule other than the declared one)."""
    from ppal_lab.compendium import ledger
    from ppal_lab.compendium.verdicts import decide_all

    for record in ledger.chapter_records():
        declared = SPECS[record["notebook"]].claims
        assert [c["id"] for c in record["claims"]] == [c.id for c in declared], record["notebook"]
        for claim, decided in zip(record["claims"], decide_all(declared, record["metrics"])):
            assert claim["seed_value"].strip() and claim["measured"].strip()
            assert {k: claim.get(k) for k in decided} == decided, claim["id"]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_no_cell_types_a_verdict_and_no_cell_exceeds_15_lines_of_logic(name):
    """Verdicts come from the chapter module and the engine; a cell is one call and a plot (the
    parameters cell is a declaration, checked against the spec above)."""
    import re

    verdict = re.compile(r"""["'](reproduced|not reproduced|partly|inconclusive|not measurable)["']""")
    nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        assert not verdict.search(cell.source), f"code cell {i} types a verdict"
        if "parameters" not in cell.metadata.get("tags", []):
            # physical lines, as a reader sees them: a call wrapped over 8 lines reads as 8
            logic = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
            assert len(logic) <= 15, f"code cell {i} has {len(logic)} lines of logic"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_benchmark_record_a_chapter_reads_is_one_of_its_inputs(name, monkeypatch, tmp_path):
    """A rerun benchmark makes the notebooks that read its record stale (their figures come from it)."""
    import re
    import shutil

    from ppal_lab.compendium import runner

    nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
    module = repo_root() / "ppal_lab" / "chapters" / f"ch{name[:2]}_{name[3:]}.py"
    figures = module.with_name(f"{module.stem}_figures.py")
    text = "".join(c.source for c in nb.cells if c.cell_type == "code") + module.read_text()
    text += figures.read_text() if figures.exists() else ""
    spec = SPECS[name]
    assert set(re.findall(r"bench_[a-z_]+\.json", text)) == set(spec.reads)
    for read in spec.reads:
        (tmp_path / "data" / "results").mkdir(parents=True, exist_ok=True)
        shutil.copy(repo_root() / "data" / "results" / read, tmp_path / "data" / "results" / read)
        monkeypatch.setattr(runner, "repo_root", lambda: tmp_path)
        before = runner.input_hash(spec)
        (tmp_path / "data" / "results" / read).write_text("{}")
        assert runner.input_hash(spec) != before


def _figure_cells(name):
    nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and (
        "plots.save(" in c.source or "plt.show()" in c.source  # or a chapter function that draws one
        or any("image/png" in o.get("data", {}) for o in c.get("outputs", [])))]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_figure_has_a_caption_a_name_and_alt_text(name):
    """The book numbers a figure by its name, shows its caption, and gives screen readers its alt text."""
    cells = _figure_cells(name)
    assert cells, "a chapter without a figure?"
    missing = []
    for i, cell in cells:
        meta = cell.metadata.get("mystnb", {})
        figure, alt = meta.get("figure", {}), meta.get("image", {}).get("alt", "")
        if not (figure.get("caption", "").strip() and figure.get("name", "").startswith(f"fig-{name[:2]}-")
                and len(alt.split()) >= 5):
            missing.append(i)
    assert not missing, f"figure cells without caption / name fig-{name[:2]}-... / alt text: {missing}"
    names = [c.metadata["mystnb"]["figure"]["name"] for _, c in cells]
    assert len(names) == len(set(names)), "figure names repeat"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_figures_are_drawn_for_the_book_column(name):
    """At most 7.5 in wide (750 px at 100 dpi: the column shows it unshrunk) and two panels a row."""
    import re

    for i, cell in _figure_cells(name):
        widths = [float(w) for w in re.findall(r"figsize=\(\s*([\d.]+)", cell.source)]
        columns = [int(c) for c in re.findall(r"subplots\(\s*\d+,\s*(\d+)", cell.source)]
        assert all(w <= 7.5 for w in widths), f"cell {i}: figure {widths} in wide"
        assert all(c <= 2 for c in columns), f"cell {i}: {columns} panels a row"
