"""Threads and a report of how this installation was built."""

from __future__ import annotations

import sys

import numpy as np

from . import _backend, _checks


def set_num_threads(n: int) -> None:
    """Sets walkback's thread count (its pool runs our loops and our BLAS's parallel parts).

    The default is the number of CPUs this process may use, or ``WALKBACK_NUM_THREADS``.
    Results do not depend on it while ``set_reproducible(True)`` holds (the default): the
    random stream is keyed by chain and unit, not thread, and every product is cut into the
    same BLAS calls whatever the thread count.
    """
    _backend.cpu().set_num_threads(_checks.check_int("n", n, 1, 1024))


def get_num_threads() -> int:
    return _backend.cpu().get_num_threads()


def set_reproducible(on: bool = True) -> None:
    """Whether results are bitwise the same for any thread count (the default: True).

    OpenBLAS picks its kernel by the shape of each call, and its kernels round differently.
    So, by default, walkback cuts a product into the BLAS calls it would make on two threads,
    whatever the pool's size: every thread count makes the same calls and gets the same bits.
    The cost is on machines with more than two cores: a product made by OpenBLAS uses 2 to
    8 of them (8 for column slices of 16-256 rows, 2 for row slices and from 1,024 rows);
    walkback's own kernel and loops use every thread.
    ``set_reproducible(False)`` cuts by the pool's size instead: faster there, and results
    can then move in the last bits (about 1e-7 relative) from one thread count to another.
    """
    if not isinstance(on, (bool, np.bool_)):
        raise TypeError(f"on: expected True or False, got {on!r}")
    _backend.cpu().set_reproducible(bool(on))


def get_reproducible() -> bool:
    return bool(_backend.cpu().get_reproducible())


def _packed_gemm_line() -> str:
    isa = _backend.cpu().packed_gemm_isa()
    if isa == "none":
        return "off (no AVX2, or WALKBACK_PACKED_GEMM=0): the BLAS does every product"
    # packed_chain_pays and packed_gemm_pays in packed_gemm.h (one DAE chain: its own pass).
    most = "" if isa == "avx512" else ", up to 256"
    rows = f"2 (DAE, GSN) or 8 (diffusion) rows or more{most}"
    # prefer_packed_gemm in packed_gemm.h: where OpenBLAS's own kernels are narrower.
    batches = (
        "; also training products and weight gradients (OpenBLAS's kernels are narrower)"
        if _backend.cpu().prefer_packed_gemm()
        else ""
    )
    return f"{isa} kernel, for chains of {rows}{batches}"


def show_config(file=None) -> dict:
    """Prints (and returns) the version, the BLAS and its threads, and the CUDA status."""
    from . import __version__

    mod = _backend.cuda()
    info = {
        "walkback": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": _backend.cpu().blas_info(),
        "threads": get_num_threads(),
        "reproducible": get_reproducible(),
        # walkback's own GEMM for a chain's fixed weights (csrc/walkback/packed_gemm.h).
        "packed_gemm": _packed_gemm_line(),
        "cuda_extension": "built" if mod is not None else "not built (nvcc was not found)",
        "cuda_devices": mod.device_count() if mod is not None else 0,
    }
    for k, v in info.items():
        print(f"{k:>15}: {v}", file=file or sys.stdout)
    return info
