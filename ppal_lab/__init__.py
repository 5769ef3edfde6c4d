"""ppal_lab — the shared code of the PPAL compendium.

Algorithms, data generators and experiment logic live here; the notebooks in ``notebooks/`` tell the
story and plot. See the README and ``book/`` for the map.

Importing the package pins the floating-point paths of numpy, torch and their BLAS libraries (see
:mod:`ppal_lab.compendium.numerics`), so that every machine computes the same numbers; import it before numpy or
torch for the pins to hold in an interactive session.
"""
from ppal_lab.compendium.numerics import pin as _pin

_pin()
__version__ = "0.1.0"
