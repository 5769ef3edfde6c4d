"""Parameter specs and their validation: the errors a reader sees before any work starts."""
import pytest

from ppal_lab.compendium.errors import ParameterError
from ppal_lab.compendium.params import NotebookSpec, Param, UnknownParameterError
from ppal_lab.compendium.specs import SPECS, resolve

SPEC = NotebookSpec("99_example", "example", (
    Param("seed", int, 0, "seed", low=0),
    Param("epsilon", float, 1.0, "privacy budget", low=0.0, low_open=True),
    Param("delta", float, 1e-5, "delta", low=0.0, high=1.0, low_open=True, high_open=True),
    Param("strategy", str, "entropy", "acquisition", choices=("random", "entropy")),
    Param("kinds", list, ["a"], "kinds", choices=("a", "b")),
    Param("plot", bool, True, "draw plots"),
))


@pytest.mark.parametrize("name, text, expected", [
    ("epsilon", "0.5", 0.5), ("seed", "7", 7), ("strategy", "random", "random"),
    ("kinds", "a,b", ["a", "b"]), ("plot", "false", False), ("delta", "1e-6", 1e-6),
])
def test_parse_valid(name, text, expected):
    assert SPEC.parse([(name, text)]) == {name: expected}


@pytest.mark.parametrize("name, text, fragment", [
    ("epsilon", "0", "epsilon = 0.0 is invalid: must be > 0.0"),
    ("epsilon", "-1", "epsilon"),
    ("delta", "1", "delta = 1.0 is invalid: must be in (0.0, 1.0)"),
    ("seed", "1.5", "seed = '1.5' is invalid: must be int"),
    ("seed", "-3", "seed = -3 is invalid: must be >= 0"),
    ("strategy", "magic", "strategy = 'magic' is invalid: must be one of 'random', 'entropy'"),
    ("kinds", "a,c", "kinds = 'c'"),
    ("plot", "maybe", "plot = 'maybe'"),
])
def test_parse_invalid_names_parameter_value_and_range(name, text, fragment):
    with pytest.raises(ParameterError) as err:
        SPEC.parse([(name, text)])
    assert fragment in str(err.value)


def test_unknown_parameter_lists_known_ones():
    with pytest.raises(UnknownParameterError, match="unknown parameter 'eps'.*epsilon"):
        SPEC.validate({"eps": 1.0})


def test_validate_fills_defaults_and_accepts_int_for_float():
    full = SPEC.validate({"epsilon": 2})
    assert full["epsilon"] == 2.0 and isinstance(full["epsilon"], float)
    assert full["seed"] == 0 and full["kinds"] == ["a"]
    with pytest.raises(ParameterError):
        SPEC.validate({"seed": True})  # a bool is not an int here


def test_every_registered_default_is_valid():
    for spec in SPECS.values():
        assert spec.validate({}) == spec.defaults()


@pytest.mark.parametrize("query", ["01_supply_chain_data", "01_supply_chain_data.ipynb",
                                   "notebooks/01_supply_chain_data.ipynb", "01", "supply_chain_data"])
def test_resolve_by_name_number_or_word(query):
    assert resolve(query).name == "01_supply_chain_data"


def test_resolve_unknown_notebook():
    with pytest.raises(ParameterError, match="notebook = 'nope' is invalid"):
        resolve("nope")
