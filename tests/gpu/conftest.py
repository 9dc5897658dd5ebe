"""GPU tests run every CUDA op and model against the CPU backend. They skip, with the reason,
when walkback was built without CUDA, CuPy is missing, or no GPU is visible."""

import pathlib

import pytest

import walkback as wb


def _skip_reason():
    if not wb.cuda_built():
        return "walkback was built without the CUDA extension (nvcc not found)"
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed"
    if not wb.cuda_available():
        return "CUDA extension built, but no CUDA device is visible"
    return None


_HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason is None:
        return
    for item in items:
        if _HERE in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))
