"""Test-session set-up shared by the unit tests and nbval: notebooks executed by the tests write their
result records and figures into a temporary folder, never over the committed ones.

``ppal_lab`` is imported first so that its floating-point pins (``ppal_lab.compendium.numerics``) are in the
environment before numpy or torch load, in this process and in every kernel nbval starts.
"""
import os
import tempfile

import ppal_lab  # noqa: F401  (pins the floating-point paths)

os.environ.setdefault("PPAL_OUTPUT_DIR", tempfile.mkdtemp(prefix="ppal-test-"))
os.environ.setdefault("MPLBACKEND", "Agg")


# --------------------------------------------------------------------------- records after nbval
# After nbval re-executes a notebook, one more test item compares the record that run wrote with the
# committed record under the chapter's declared tolerances (ppal_lab.compendium.reproduce), naming every metric
# outside its tolerance and by how much. nbval itself checks only outputs that must match exactly.
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SESSION_START = time.time()


class RecordReproduces(pytest.Item):
    def runtest(self):
        import json

        from ppal_lab.compendium.paths import OUTPUT_ENV, repo_root
        from ppal_lab.compendium.reproduce import compare_records
        from ppal_lab.compendium.specs import SPECS

        name = Path(self.parent.path).stem
        fresh = Path(os.environ[OUTPUT_ENV]) / f"{name}.json"
        if not fresh.exists() or fresh.stat().st_mtime < SESSION_START:
            raise RecordMismatch([f"the notebook wrote no record to {fresh}"])
        committed = json.loads((repo_root() / "data" / "results" / f"{name}.json").read_text())
        problems = compare_records(SPECS[name], committed, json.loads(fresh.read_text()))
        if problems:
            raise RecordMismatch(problems)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, RecordMismatch):
            return "record differs from the committed one beyond the declared tolerances:\n" + "\n".join(
                "  " + p for p in excinfo.value.args[0])
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.parent.name}::record"


class RecordMismatch(AssertionError):
    pass


def pytest_collection_modifyitems(session, config, items):
    try:
        from nbval.plugin import IPyNbFile
    except ImportError:
        return
    from ppal_lab.compendium.specs import SPECS

    out = []
    for i, item in enumerate(items):
        out.append(item)
        parent = item.parent
        last_cell = i + 1 == len(items) or items[i + 1].parent is not parent
        if isinstance(parent, IPyNbFile) and last_cell and Path(parent.path).stem in SPECS:
            out.append(RecordReproduces.from_parent(parent, name="record"))
    items[:] = out
