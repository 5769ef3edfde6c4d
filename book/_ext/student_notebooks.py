"""Student notebooks: every chapter without its exercise solutions, written beside the built book.

A solution in a chapter runs from a markdown cell that opens ```{solution-start}``` to the cell that opens
```{solution-end}```; the student copy drops those cells, keeps what follows the end marker in its cell (the
next exercise), and keeps every other cell and output. The book links to the copies at
``_static/student/<chapter>.ipynb``, and the page header's download button (".ipynb", which serves
``_sources/notebooks/<chapter>.ipynb``) gets the same copy: no download of the book hands out the solutions.
Also runnable alone: ``python book/_ext/student_notebooks.py OUTDIR``.
"""
import re
import sys
from pathlib import Path

import nbformat

END = re.compile(r"\A\s*```\{solution-end\}\s*\n```\s*\n?")


def without_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with every solution's cells removed."""
    out, inside = nbformat.v4.new_notebook(metadata=nb.metadata), False
    for cell in nb.cells:
        src = cell.source.lstrip()
        if cell.cell_type == "markdown" and src.startswith("```{solution-start}"):
            inside = True
            continue
        if inside and cell.cell_type == "markdown" and src.startswith("```{solution-end}"):
            inside = False
            rest = END.sub("", src, count=1).strip()
            if rest:
                out.cells.append(nbformat.v4.new_markdown_cell(rest))
            continue
        if not inside:
            out.cells.append(cell)
    if inside:
        raise ValueError("a solution-start without its solution-end")
    return out


def write_all(notebooks: Path, outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        target = outdir / path.name
        nbformat.write(without_solutions(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def _on_build_finished(app, exception):
    if exception is None and app.builder.format == "html":
        for folder in (Path("_static") / "student", Path("_sources") / "notebooks"):
            write_all(Path(app.srcdir) / "notebooks", Path(app.outdir) / folder)


def setup(app):
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    for p in write_all(Path(__file__).resolve().parents[2] / "notebooks", Path(sys.argv[1])):
        print(p)
