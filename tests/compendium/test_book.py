"""The book builds offline with warnings as errors, so a broken page fails the tests."""
import subprocess
import sys
from pathlib import Path

import pytest

from ppal_lab.compendium.paths import repo_root


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_book_builds_without_warnings():
    jb = Path(sys.executable).with_name("jupyter-book")
    out = subprocess.run([str(jb), "build", str(repo_root()), "-W", "-n", "--keep-going"],
                         capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert (repo_root() / "_build" / "html" / "index.html").exists()


# --------------------------------------------------------------------------- fast checks on the sources
import importlib.util  # noqa: E402
import re  # noqa: E402

import nbformat  # noqa: E402
import yaml  # noqa: E402

from ppal_lab.compendium import ledger  # noqa: E402
from ppal_lab.compendium.specs import SPECS  # noqa: E402
from ppal_lab.compendium.verdicts import VERDICTS  # noqa: E402


def _book_extension(name):
    path = repo_root() / "book" / "_ext" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_book_loads_mathjax_from_its_own_files():
    config = yaml.safe_load((repo_root() / "_config.yml").read_text())["sphinx"]["config"]
    assert not re.match(r"\w+://", config["mathjax_path"]), "MathJax from the network"
    static = [repo_root() / p for p in config["html_static_path"]]
    assert any((s / config["mathjax_path"]).is_file() for s in static)
    assert "sphinx_thebe" not in config["extensions"]  # its CDN script and duplicate THEBE_JS_URL


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_chapter_opens_with_its_rerun_box_generated_from_the_spec(name):
    box = repo_root() / ledger.RERUN / f"{name[:2]}.md"
    assert box.read_text() == ledger.rerun_box(name), "run `ppal-lab book` to regenerate it"
    for p in SPECS[name].params:
        assert f"* - `{p.name}`\n  - `{p.default!r}`\n  - {p.allowed()}" in box.read_text()
    first = next(c for c in nbformat.read(repo_root() / "notebooks" / f"{name}.ipynb", 4).cells
                 if c.cell_type == "markdown")
    assert f"```{{include}} ../book/rerun/{name[:2]}.md\n```" in first.source


def test_every_claim_of_the_ledger_carries_a_badge_of_its_verdict():
    assert set(ledger.BADGE) == set(VERDICTS) and len(set(ledger.BADGE.values())) == len(VERDICTS)
    records = ledger.chapter_records()
    page = ledger.render(records)
    for r in records:
        for i, c in enumerate(r["claims"], 1):
            row = f"* - **{r['notebook'][:2]}.{i}** *{c['id']}*"
            assert row in page
            after = page[page.index(row):].splitlines()
            assert after[1] == f"  - {{{ledger.BADGE[c['verdict']]}}}`{c['verdict']}`"
            assert f"- **{r['notebook'][:2]}.{i}** (" in page  # its rule and evidence, keyed by the number


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_student_notebook_keeps_every_exercise_and_no_solution(name):
    students = _book_extension("student_notebooks")
    nb = nbformat.read(repo_root() / "notebooks" / f"{name}.ipynb", 4)
    student = students.without_solutions(nb)
    text = "\n".join(c.source for c in student.cells)
    assert "{solution" not in text
    assert text.count("{exercise}") == sum(c.source.count("{exercise}") for c in nb.cells) > 0
    solution_code = {c.source for c in nb.cells if c.cell_type == "code"} - {c.source for c in student.cells}
    assert solution_code, "the solutions' code cells are gone"


def test_student_notebook_keeps_what_follows_a_solution_in_its_cell():
    students = _book_extension("student_notebooks")
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[
        md("intro"), md("```{solution-start} ex-a\n:class: dropdown\n```\nanswer"), code("secret = 42"),
        md("```{solution-end}\n```\n\n:::{exercise}\n:label: ex-b\nnext\n:::"), code("shown = 1")])
    assert [c.source for c in students.without_solutions(nb).cells] == [
        "intro", ":::{exercise}\n:label: ex-b\nnext\n:::", "shown = 1"]
    with pytest.raises(ValueError):
        students.without_solutions(nbformat.v4.new_notebook(cells=nb.cells[:3]))


def test_bibliography_labels_are_author_year_like_the_citations():
    from pybtex.database import Entry, Person

    labels = _book_extension("bib_author_year").AuthorYearLabels()

    def entry(year, *authors):
        return Entry("article", fields={"year": year, "title": "t"},
                     persons={"author": [Person(a) for a in authors]})

    entries = [entry("1979", "Adi Shamir"), entry("2016", "M. Abadi", "A. Chu", "I. Goodfellow"),
               entry("2016", "M. Abadi", "B. Other", "C. Third"), entry("2007", "Damg{\\aa}rd, Ivan", "Nielsen, J.")]
    assert list(labels.format_labels(entries)) == [
        "Shamir, 1979", "Abadi et al., 2016a", "Abadi et al., 2016b", "Damgård and Nielsen, 2007"]
