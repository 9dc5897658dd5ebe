"""Which extension runs an operation: the CPU module for NumPy arrays, the CUDA module for
arrays that live on a GPU (CuPy, or anything with ``__cuda_array_interface__``/``__dlpack__``
on a CUDA device). Both are imported lazily; the CUDA one may be absent."""

from __future__ import annotations

import functools
import importlib

import numpy as np


@functools.cache
def cpu():
    """The CPU extension module (always built)."""
    return importlib.import_module("walkback._walkback_cpu")


@functools.cache
def cuda():
    """The CUDA extension module, or None when the package was built without nvcc."""
    try:
        return importlib.import_module("walkback._walkback_cuda")
    except ImportError:
        return None


def cuda_built() -> bool:
    """True when the CUDA extension was compiled into this installation."""
    return cuda() is not None


def cuda_available() -> bool:
    """True when the CUDA extension is built *and* a CUDA device is visible."""
    mod = cuda()
    return mod is not None and mod.device_count() > 0


_DLPACK_CUDA = 2  # kDLCUDA in DLPack's DLDeviceType


def is_gpu_array(x) -> bool:
    if isinstance(x, np.ndarray):
        return False
    if hasattr(x, "__cuda_array_interface__"):
        return True
    if hasattr(x, "__dlpack_device__"):
        return x.__dlpack_device__()[0] == _DLPACK_CUDA
    return False


def to_backend_array(x, name: str):
    """Returns (array, "cpu"|"cuda"): a NumPy array, or a CuPy array for GPU inputs.

    NumPy arrays pass through unchanged; CPU objects with ``__dlpack__`` (PyTorch CPU tensors)
    become NumPy views without a copy; GPU objects become CuPy views through DLPack.
    """
    if isinstance(x, np.ndarray):
        return x, "cpu"
    if is_gpu_array(x):
        try:
            import cupy
        except ImportError as e:
            raise TypeError(f"{name}: a GPU array needs CuPy installed") from e
        if isinstance(x, cupy.ndarray):
            return x, "cuda"
        return cupy.from_dlpack(x), "cuda"
    if hasattr(x, "__dlpack__"):
        return np.from_dlpack(x), "cpu"
    return np.asarray(x), "cpu"


def array_module(x):
    """numpy for NumPy arrays, cupy for CuPy arrays."""
    if isinstance(x, np.ndarray):
        return np
    import cupy

    return cupy


def device_of(x) -> str:
    """'cpu' or 'cuda': where an array lives."""
    return "cuda" if is_gpu_array(x) else "cpu"


def check_device_name(device) -> str:
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    return device
