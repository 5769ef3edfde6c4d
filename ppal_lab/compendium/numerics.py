"""One place that chooses the floating-point paths, so a run gives the same numbers on every machine.

Machines of the same kind differ in their CPUs (some have AVX-512, some only AVX2), and the numerical
libraries pick their kernels at run time from what the CPU offers. Measured on one machine here (hashes
of results before and after each switch): torch's element-wise kernels (``exp``, ``tanh``) follow
``ATEN_CPU_CAPABILITY``; numpy's ``exp`` and ``log`` take SVML's AVX-512 code unless those features are
disabled; a torch ``Linear`` and numpy's OpenBLAS ``matmul`` split their sums differently with two
threads than with one, and OpenBLAS's Haswell and SkylakeX kernels differ only when threaded. So the
pins below choose the AVX2 paths that every machine of this kind has, and one thread per library.

``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are left alone on purpose: some machines set them to work
around OpenBLAS bugs on their processor. What still differs between machines (OpenBLAS kernels chosen by
the CPU, libm) is compared with the tolerances each chapter declares (:mod:`ppal_lab.compendium.reproduce`).

The pins are environment variables, read by each library when it loads: :func:`pin` runs when
``ppal_lab`` is imported (so the ``ppal-lab`` command, the test suite and every kernel they start have
them). They override the user's thread settings too, because results must not depend on them; set
``PPAL_NUMERICS=native`` to opt out (faster on many cores, but no longer comparable bit for bit).
:func:`state` says what was really in force; every result record carries it.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping, MutableMapping

PINNED: Mapping[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",                      # torch's vectorised CPU kernels
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",                  # torch's BLAS (MKL) ...
    "MKL_CBWR": "AVX2",                                 # ... with conditional numerical reproducibility
    "ONEDNN_MAX_CPU_ISA": "AVX2",                       # torch's oneDNN kernels
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's AVX-512 (SVML) loops
    "OMP_NUM_THREADS": "1",                             # torch intra-op, scikit-learn's OpenMP
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",                        # numpy's and scipy's OpenBLAS
}


def pin(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set the pinned variables (unless ``PPAL_NUMERICS=native``); return the ones changed. Libraries
    loaded before the pins get one thread each at run time, the most that can still be done for them."""
    if environ.get("PPAL_NUMERICS") == "native":
        return {}
    changed = {k: v for k, v in PINNED.items() if environ.get(k) != v}
    environ.update(changed)
    if changed and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if changed and "numpy" in sys.modules:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)
        except ImportError:
            pass
    return changed


def state() -> dict[str, object]:
    """What is in force in this process: the pinned variables as set, the kernels torch and numpy
    really use, and whether numpy or torch were loaded before the pins (then the pins may not hold)."""
    import numpy as np

    info: dict[str, object] = {k: os.environ.get(k) for k in PINNED}
    features = getattr(np._core._multiarray_umath, "__cpu_features__", {})
    info["cpu_has_avx512"] = bool(features.get("AVX512F") or features.get("X86_V4"))
    if "torch" in sys.modules:
        info["torch_cpu_capability"] = sys.modules["torch"].backends.cpu.get_cpu_capability()
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    try:
        from threadpoolctl import threadpool_info

        blas = [p for p in threadpool_info() if p.get("internal_api") == "openblas"]
        info["openblas_kernels"] = sorted({p.get("architecture") or "?" for p in blas})
    except ImportError:  # threadpoolctl comes with scikit-learn; without it the kernels stay unnamed
        pass
    return info
