"""The folder tree is the architecture: imports point down only (chapters → field rooms → the
compendium's errors and paths), the machinery never imports the field, rooms form no cycle, every room's
``__init__`` says what lives there and who may import it, and no module outgrows one idea."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "ppal_lab"
MACHINERY = "compendium"
FIELD = {"data", "learning", "privacy", "federated", "secure", "optimize", "marl", "verify"}
# What the field may use from the machinery: validation errors and where files go.
FIELD_MAY_USE = {"ppal_lab.compendium.errors", "ppal_lab.compendium.paths"}
MODULES = sorted(p for p in PKG.rglob("*.py"))


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PKG / parts[1]).is_dir()) else None


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (use absolute ppal_lab.… imports)"
            found.add(node.module or "")
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("ppal_lab.")}


def existing(name: str) -> str:
    """The module an imported name belongs to (``ppal_lab.x.y.Name`` → ``ppal_lab.x.y``)."""
    while name.count(".") > 1 and not _is_module(name):
        name = name.rsplit(".", 1)[0]
    return name


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PKG / rel).with_suffix(".py").exists() or (PKG / rel / "__init__.py").exists()


GRAPH = {module_name(p): {existing(m) for m in imports(p)} for p in MODULES}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if room(m) == MACHINERY))
def test_the_machinery_never_imports_the_field(module):
    assert {m for m in GRAPH[module] if room(m) != MACHINERY} == set()


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if room(m) in FIELD))
def test_the_field_uses_only_errors_and_paths_of_the_machinery_and_never_a_chapter(module):
    used = GRAPH[module]
    assert {m for m in used if room(m) == MACHINERY} <= FIELD_MAY_USE
    assert {m for m in used if room(m) == "chapters"} == set()


def test_rooms_form_no_cycle():
    edges = {}
    for module, used in GRAPH.items():
        for m in used:
            if room(module) and room(m) and room(m) != room(module):
                edges.setdefault(room(module), set()).add(room(m))
    done, active = set(), []

    def visit(r):
        assert r not in active, f"rooms import each other in a cycle: {' → '.join(active + [r])}"
        if r in done:
            return
        active.append(r)
        for s in edges.get(r, ()):
            visit(s)
        active.pop()
        done.add(r)

    for r in list(edges):
        visit(r)


def test_no_module_imports_itself_through_a_cycle():
    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for m in GRAPH.get(todo.pop(), ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    # A package's __init__ re-exports its modules: that edge is a listing, not a dependency.
    packages = {m for m in GRAPH if (PKG / Path(*m.split(".")[1:]) / "__init__.py").exists()}
    cyclic = [m for m in GRAPH if m in reach(m) and m not in packages]
    assert cyclic == []


def test_every_room_says_what_lives_there_and_who_may_import_it():
    for folder in sorted(p for p in PKG.iterdir() if p.is_dir() and not p.name.startswith("__")):
        init = folder / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc and "import" in doc.lower(), f"{init}: docstring must say who may import this room"


def test_chapter_modules_are_named_after_their_notebooks():
    from ppal_lab.compendium.specs import SPECS

    # a chapter's module, and where it would pass 900 lines, a companion with its figures and tables
    chapters = {p.stem.removesuffix("_figures") for p in (PKG / "chapters").glob("ch*.py")}
    assert chapters <= {f"ch{name}" for name in SPECS}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_is_over_900_lines(path):
    assert len(path.read_text().splitlines()) <= 900
