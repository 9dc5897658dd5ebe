"""Threads and a report of how this installation was built."""

from __future__ import annotations

import sys

from . import _backend, _checks


def set_num_threads(n: int) -> None:
    """Sets walkback's thread count (its pool runs our loops and our BLAS's parallel parts).

    The default is the number of CPUs this process may use, or ``WALKBACK_NUM_THREADS``.
    The random numbers do not depend on it: the stream is keyed by chain and unit, not
    thread. Most results are bitwise the same for any thread count; where a product is cut
    into BLAS calls whose shapes follow the thread count, OpenBLAS's kernels (chosen by
    shape) can round differently, and results move in the last bits (seen: ShapedChain, and
    Diffusion's gradients at some sizes, about 1e-7 relative).
    """
    _backend.cpu().set_num_threads(_checks.check_int("n", n, 1, 1024))


def get_num_threads() -> int:
    return _backend.cpu().get_num_threads()


def _packed_gemm_line() -> str:
    isa = _backend.cpu().packed_gemm_isa()
    if isa == "none":
        return "off (no AVX2, or WALKBACK_PACKED_GEMM=0): the BLAS does every product"
    rows = "8 or more" if isa == "avx512" else "8 to 256"  # packed_gemm_pays in packed_gemm.h
    return f"{isa} kernel, for chains of {rows} rows"


def show_config(file=None) -> dict:
    """Prints (and returns) the version, the BLAS and its threads, and the CUDA status."""
    import numpy as np

    from . import __version__

    mod = _backend.cuda()
    info = {
        "walkback": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": _backend.cpu().blas_info(),
        "threads": get_num_threads(),
        # walkback's own GEMM for a chain's fixed weights (csrc/walkback/packed_gemm.h).
        "packed_gemm": _packed_gemm_line(),
        "cuda_extension": "built" if mod is not None else "not built (nvcc was not found)",
        "cuda_devices": mod.device_count() if mod is not None else 0,
    }
    for k, v in info.items():
        print(f"{k:>15}: {v}", file=file or sys.stdout)
    return info
