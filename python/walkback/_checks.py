"""Input validation for the public API: every message names the argument and what was
expected."""

from __future__ import annotations

import operator

import numpy as np

from . import _backend, _codes

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_int(name: str, v, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an integer, got {v!r}")
    try:
        v = operator.index(v)
    except TypeError as e:
        raise TypeError(f"{name}: expected an integer, got {v!r}") from e
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: expected an integer <= {maximum}, got {v}")
    return v


def check_widths(name: str, v, count: int | None = None) -> tuple:
    """Layer widths: an int (one layer) or a sequence of positive ints; `count`, when given, is
    the number of layers required."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        v = (v,)
    elif isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise TypeError(f"{name}: expected an int or a sequence of ints, got {v!r}")
    widths = tuple(check_int(name, h, 1, 2**31 - 1) for h in v)
    if count is not None and len(widths) != count:
        raise ValueError(f"{name}: expected {count} layer sizes, got {widths}")
    if not widths:
        raise ValueError(f"{name}: expected at least one hidden layer")
    return widths


def check_float(name: str, v) -> float:
    """A real number (NaN and inf pass: the caller checks the range); bools, strings and
    complex numbers are not numbers here."""
    if isinstance(v, (str, bytes, bool, np.bool_)) or np.iscomplexobj(v):
        raise TypeError(f"{name}: expected a number, got {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a number, got {v!r}") from e
    except OverflowError as e:
        raise ValueError(f"{name}: {v!r} is too large for a float") from e


def all_finite(arrays) -> bool:
    """Whether every value of the arrays is finite (NumPy or CuPy, each on its device)."""
    return all(bool(_backend.array_module(a).isfinite(a).all()) for a in arrays)


def check_bool(name: str, v) -> bool:
    """A flag: True or False (NumPy's bools too); "no" or 2 is not a yes or a no."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {v!r}")
    return bool(v)


def check_dtype(dtype) -> np.dtype:
    """A model's dtype: float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from e
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def check_first_chain(first_chain, chains: int) -> int:
    """The random stream's index of a call's first chain: chains first_chain ..
    first_chain + chains - 1 must fit the stream's 32-bit chain counter (past it, chains would
    reuse the numbers of others)."""
    first_chain = check_int("first_chain", first_chain, 0, 2**32 - 1)
    if first_chain + chains > 2**32:
        raise ValueError("first_chain + chains: the chain index must stay below 2**32")
    return first_chain


def check_steps_fit(step: int, steps: int) -> None:
    """Steps step .. step + steps - 1 must fit the stream's 32-bit step counter."""
    if step + steps > 2**32:
        raise ValueError("step + steps: the step index must stay below 2**32")


def check_seed(name: str, seed) -> int:
    return check_int(name, seed, 0, 2**64 - 1)


def check_activation(a) -> int:
    if not isinstance(a, str) or a not in _codes.ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_codes.ACTIVATIONS)}, got {a!r}")
    return _codes.ACTIVATIONS[a]


def float_dtype(name: str, x) -> np.dtype:
    dt = np.dtype(x.dtype)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {dt}")
    return dt


def as_numeric(name: str, x) -> np.ndarray:
    """np.asarray(x), which must hold real numbers (bool, int or float): anything else is a
    TypeError naming the argument."""
    try:
        a = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - anything NumPy cannot read is a type error here
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}") from e
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    return a


def as_state(name: str, x, dtype: np.dtype, width: int):
    """A fresh C-contiguous (n, width) copy of x in `dtype`; 1-D input is one chain. GPU
    arrays (CuPy, or CUDA tensors through DLPack) give a CuPy copy on the same device."""
    if _backend.is_gpu_array(x):
        a, _ = _backend.to_backend_array(x, name)
        xp = _backend.array_module(a)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    else:
        xp = np
        a = as_numeric(name, x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(f"{name}: expected shape (n, {width}) or ({width},), got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got shape {a.shape}")
    out = xp.array(a, dtype=dtype, order="C", copy=True)
    if not bool(xp.isfinite(out).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return out


def check_binary(name: str, x: np.ndarray) -> None:
    if not bool(((x == 0) | (x == 1)).all()):  # NumPy or CuPy
        raise ValueError(f"{name}: a Bernoulli chain needs binary values (0 or 1)")


def as_bool_mask(name: str, m) -> np.ndarray:
    """A bool array from bools or 0/1 integers; 0.5 or 2 is not a yes or a no."""
    m = np.asarray(m)
    if m.dtype != np.bool_:
        if m.dtype.kind in "iu" and np.all((m == 0) | (m == 1)):
            return m.astype(bool)
        raise TypeError(f"{name}: expected a bool mask, got dtype {m.dtype}")
    return m


def as_clamp(clamp, n: int, width: int) -> np.ndarray:
    """A clamp mask as uint8 of shape (width,) or (n, width)."""
    m = as_bool_mask("clamp", clamp)
    if m.shape not in ((width,), (n, width)):
        raise ValueError(f"clamp: expected shape ({width},) or ({n}, {width}), got {m.shape}")
    return np.ascontiguousarray(m, dtype=np.uint8)


def check_param_array(name: str, a, shape: tuple, dtype: np.dtype) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{name}: expected an array, got {type(a).__name__}") from e
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    out = np.array(arr, dtype=dtype, order="C", copy=True)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return out
