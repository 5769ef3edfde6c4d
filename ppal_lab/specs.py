"""The registry of notebooks and their parameters (pure data: no algorithms are imported here)."""
from __future__ import annotations

from .errors import ParameterError
from .params import NotebookSpec, Param

SEED = Param("seed", int, 0, "seed of every random draw in the notebook", low=0, high=2**32 - 1)

SPECS: dict[str, NotebookSpec] = {}


def register(spec: NotebookSpec) -> NotebookSpec:
    SPECS[spec.name] = spec
    return spec


register(NotebookSpec(
    name="01_supply_chain_data",
    title="The two data sets: remanufacturing and magnet grades",
    params=(
        SEED,
        Param("n_seeds", int, 5, "independent data sets for the drift confidence interval", low=1, high=50),
        Param("n_items", int, 4000, "remanufacturing components generated", low=100, high=1_000_000),
        Param("n_sites", int, 4, "participants in the horizontal partition", low=1, high=100),
        Param("n_per_month", int, 10_000, "hard drives arriving per month", low=100, high=1_000_000),
        Param("n_months", int, 12, "months of hard-drive arrivals (3 per quarter)", low=3, high=60),
        Param("missing_rate", float, 0.8, "fraction of magnet-data feature values missing",
              low=0.0, high=1.0, high_open=True),
        Param("missing_mechanism", str, "mcar", "how magnet-data values go missing",
              choices=("mcar", "mar", "mnar")),
        Param("label_rate", float, 0.02, "fraction of hard drives with a known magnet grade",
              low=0.0, high=1.0, low_open=True),
    ),
    headline=("remanufacturable_rate", "magnet_missing_rate", "magnet_label_rate",
              "drift_accuracy_drop"),
    budget_s=60.0,
))


def resolve(name: str) -> NotebookSpec:
    """Find a notebook by its full name, with or without ``.ipynb``, or by an unambiguous part of it
    (its number ``01`` or a word ``data``)."""
    key = name[:-6] if name.endswith(".ipynb") else name
    key = key.rsplit("/", 1)[-1]
    if key in SPECS:
        return SPECS[key]
    hits = [n for n in SPECS if n.split("_", 1)[0] == key or n.split("_", 1)[-1] == key]
    if not hits:
        hits = [n for n in SPECS if key and key in n]
    if len(hits) == 1:
        return SPECS[hits[0]]
    allowed = "one of " + ", ".join(SPECS) if not hits else "unambiguous among " + ", ".join(hits)
    raise ParameterError("notebook", name, allowed)


def get_spec(name: str) -> NotebookSpec:
    return resolve(name)
