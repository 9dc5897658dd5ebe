"""The GPU side of the Python layer: CuPy arrays in, the CUDA extension's drivers called on
CuPy's current stream and device, CuPy arrays out. Nothing here touches data element by
element; it checks arrays, finds cuBLAS and passes raw device pointers."""

from __future__ import annotations

import functools
import glob
import os

import numpy as np

from . import _backend

# A captured CUDA graph runs this many chain steps per launch (cuda/dae_chain.cu); calls of
# fewer steps launch their kernels directly. WALKBACK_STEPS_PER_GRAPH=0 turns graphs off (the
# benchmark's ablation).
STEPS_PER_GRAPH = int(os.environ.get("WALKBACK_STEPS_PER_GRAPH", "16"))
# How many row blocks of a batch the chain and walk-back training run side by side, so that one
# block's elementwise kernels overlap the other's GEMMs: 0 lets the backend choose (two for
# batches of 4096 rows or more, where they measured about 1% faster; at 1024 they are slower),
# 1 or 2 force it (the benchmark's ablation and the tests). The uniforms drawn are the same (a
# sample can differ where float rounding moves a mean across its uniform).
BRANCHES = int(os.environ.get("WALKBACK_BRANCHES", "0"))
# How a tied model's chain reads W in its second GEMM (h W^T): "transposed" copies W^T once per
# call and runs cuBLAS's plain kernel on it, "stored" runs the transposed-operand kernel on W
# itself, "auto" copies for 2 to 1023 chains (cuda/dae_chain.cu; measured in
# benchmarks/RESULTS.md). The numbers drawn are the same either way.
W_LAYOUT = os.environ.get("WALKBACK_W_LAYOUT", "auto")
_W_LAYOUTS = {"auto": 0, "stored": 1, "transposed": 2}


def _branches() -> int:
    if BRANCHES not in (0, 1, 2):
        raise ValueError(
            f"WALKBACK_BRANCHES (walkback._gpu.BRANCHES) must be 0, 1 or 2, not {BRANCHES}"
        )
    return BRANCHES


def _w_layout() -> int:
    try:
        return _W_LAYOUTS[W_LAYOUT]
    except (KeyError, TypeError):
        raise ValueError(
            "WALKBACK_W_LAYOUT (walkback._gpu.W_LAYOUT) must be one of "
            f"{', '.join(map(repr, _W_LAYOUTS))}, not {W_LAYOUT!r}"
        ) from None


def require(what: str, cublas: bool = True):
    """CuPy, with the CUDA extension built, a device visible and (unless ``cublas`` is False:
    kernels without GEMMs) cuBLAS loaded; else a RuntimeError that says what is missing."""
    try:
        cupy = _ready()
        if cublas:
            _load_cublas()
        return cupy
    except _NotReady as e:
        raise RuntimeError(f"{what}: {e}") from e.__cause__


class _NotReady(Exception):
    pass


@functools.cache
def _ready():
    """The checks of require(), made once per process when they pass (a failure is not
    cached, so installing CuPy later in a session works)."""
    if not _backend.cuda_built():
        raise _NotReady("walkback was built without CUDA (nvcc was not found)")
    try:
        import cupy
    except ImportError as e:
        raise _NotReady("the CUDA backend needs CuPy (pip install cupy-cuda13x)") from e
    if not _backend.cuda_available():
        raise _NotReady("no CUDA device is visible")
    return cupy


def cublas_candidates() -> list:
    """Where libcublas may be, most likely first: $WALKBACK_CUBLAS, the nvidia-cublas wheel
    (CuPy's companion), CuPy's CUDA path, $CUDA_PATH/$CUDA_HOME, /usr/local/cuda."""
    out = []
    env = os.environ.get("WALKBACK_CUBLAS")
    if env:
        out.append(env)
    try:
        import nvidia  # the namespace package of NVIDIA's wheels

        for root in list(getattr(nvidia, "__path__", [])):
            # cu13 wheels: nvidia/cu13/lib; cu12 wheels: nvidia/cublas/lib.
            out += sorted(glob.glob(os.path.join(root, "*", "lib", "libcublas.so.1[0-9]")))[::-1]
    except ImportError:
        pass
    roots = [os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    try:
        import cupy

        roots.insert(0, cupy.cuda.get_cuda_path())
    except Exception:  # noqa: BLE001 - CuPy absent or without a CUDA path: other places remain
        pass
    for r in roots:
        if r:
            for sub in ("lib64", "lib", os.path.join("targets", "x86_64-linux", "lib")):
                out += sorted(glob.glob(os.path.join(r, sub, "libcublas.so.1[0-9]")))[::-1]
    return list(dict.fromkeys(out))


@functools.cache
def _load_cublas() -> str:
    try:
        return _backend.cuda().load_cublas(cublas_candidates())
    except RuntimeError as e:
        raise _NotReady(str(e)) from e


def cublas_origin() -> str:
    """The libcublas file (or soname) the CUDA backend loaded."""
    require("cublas_origin")
    return _load_cublas()


def stream_ptr(cupy) -> int:
    return cupy.cuda.get_current_stream().ptr


def ptr(a) -> int:
    return 0 if a is None else int(a.data.ptr)


def check_device(name: str, a, cupy) -> None:
    """A CuPy array on the current device (the kernels run there)."""
    cur = cupy.cuda.Device().id
    if a.device.id != cur:
        raise ValueError(
            f"{name}: the array is on cuda:{a.device.id} but the current CuPy device is "
            f"cuda:{cur} (use `with cupy.cuda.Device({a.device.id}):`)"
        )


def check_values(name: str, x, binary: bool = False) -> None:
    """Raises ValueError when the CuPy array x holds NaN or infinite values, or (``binary``)
    values other than 0 and 1: one kernel and one synchronization."""
    cupy = require(name)
    flags = _backend.cuda().check_values(
        ptr(x), int(x.size), int(x.dtype.itemsize), bool(binary), stream_ptr(cupy)
    )
    _raise_for_flags(name, flags)


def _raise_for_flags(name: str, flags: int) -> None:
    """The ValueError for the bits of a device-side data check (cuda/corrupt.h)."""
    if flags & 1:
        raise ValueError(f"{name}: contains NaN or infinite values")
    if flags & 2:
        raise ValueError(f"{name}: a Bernoulli chain needs binary values (0 or 1)")


def dae_model(kw: dict) -> dict:
    """The CUDA driver's model description from the DAE kernel's keyword arguments."""
    w = kw["W1"]
    return {
        "W1": ptr(w),
        "b1": ptr(kw["b1"]),
        "b0": ptr(kw["b0"]),
        "U1": ptr(kw.get("U1")),
        "D": int(w.shape[0]),
        "H": int(w.shape[1]),
        "dtype_size": int(w.dtype.itemsize),
        "activation": int(kw["activation"]),
        "reconstruction": int(kw["reconstruction"]),
        "sigma": float(kw["sigma"]),
        "corruption": int(kw["corruption"]),
        "corruption_param": float(kw["corruption_param"]),
    }


def clamp_to_device(clamp, cupy):
    """A uint8 clamp mask (from _checks.as_clamp) on the GPU, or None."""
    if clamp is None:
        return None
    if isinstance(clamp, np.ndarray):
        return cupy.asarray(clamp)
    return cupy.ascontiguousarray(clamp.astype(cupy.uint8))


def dae_chain(
    x,
    kw,
    *,
    seed,
    first_step,
    first_chain,
    steps,
    burn_in,
    every,
    clamp,
    records,
    means,
    record_means,
    check=None,
):
    """Runs the DAE chain on the GPU, the state ``x`` (B, D) advanced in place.

    ``check`` ("finite" or "binary": finite and 0 or 1) checks the start state first and raises
    ValueError for bad values, without stalling the stream: the chain is queued behind the
    check and only the check is waited for (so x has run through the chain when it raises)."""
    cupy = require("dae_chain")
    args = {
        "x": ptr(x),
        "chains": int(x.shape[0]),
        "seed": int(seed),
        "first_step": int(first_step),
        "first_chain": int(first_chain),
        "steps": int(steps),
        "burn_in": int(burn_in),
        "every": int(every),
        "clamp": ptr(clamp),
        "clamp_per_chain": clamp is not None and clamp.ndim == 2,
        "records": ptr(records),
        "means": ptr(means),
        "record_means": bool(record_means),
        "steps_per_graph": max(0, STEPS_PER_GRAPH),
        "branches": _branches(),
        "w_layout": _w_layout(),
        "check": {None: 0, "finite": 1, "binary": 2}[check],
        "stream": stream_ptr(cupy),
    }
    _raise_for_flags("x", _backend.cuda().dae_chain(dae_model(kw), args))


def dae_walkback(x, kw, *, seed, first_chain, walkbacks, last_only, grads, wait=True):
    """Walk-back loss (and gradients into the CuPy arrays of ``grads``) on the GPU.

    wait=True: returns the loss as a float, raising ValueError for bad data (one
    synchronization). wait=False: returns a 0-d float64 CuPy array the GPU fills later (NaN for
    bad data) and waits for nothing."""
    cupy = require("dae_walkback")
    loss = None if wait else cupy.empty((), dtype=cupy.float64)
    args = {
        "x": ptr(x),
        "batch": int(x.shape[0]),
        "seed": int(seed),
        "first_chain": int(first_chain),
        "walkbacks": int(walkbacks),
        "last_only": bool(last_only),
        "loss_out": ptr(loss),
        "branches": _branches(),
        "stream": stream_ptr(cupy),
    }
    g = None if grads is None else {k: ptr(grads.get(k)) for k in ("W1", "b1", "b0", "U1")}
    value = _backend.cuda().dae_walkback(dae_model(kw), args, g)
    return float(value) if wait else loss


class PendingScalar:
    """A 0-d CuPy array on its way to the host: the copy is queued at once, on the current
    stream behind the work that fills the array, into pinned memory; float() then waits for
    that copy alone. (``float(array)`` would copy behind everything queued by then: a loop that
    queues its next step first would wait for that step too.)"""

    __slots__ = ("_host", "_event")

    def __init__(self, a):
        cupy = require("read_later", cublas=False)
        import cupyx

        if a.size != 1:
            raise ValueError(f"read_later: expected one value, got shape {a.shape}")
        self._host = cupyx.empty_pinned((), dtype=a.dtype)
        a = cupy.ascontiguousarray(a)
        cupy.cuda.runtime.memcpyAsync(
            self._host.ctypes.data,
            a.data.ptr,
            a.dtype.itemsize,
            2,  # cudaMemcpyDeviceToHost
            stream_ptr(cupy),
        )
        self._event = cupy.cuda.Event(block=False, disable_timing=True)
        self._event.record()

    def __float__(self) -> float:
        if self._event is not None:
            self._event.synchronize()
            self._event = None  # read: nothing left to wait for
        return float(self._host)

    def __del__(self):
        # Never unread back to CuPy's pinned pool while the copy may still write into it (fit
        # raising with a loss in flight, say): the pool does not track pending copies.
        event = getattr(self, "_event", None)
        if event is not None:
            try:
                event.synchronize()
            except Exception:  # noqa: BLE001 - at interpreter exit CUDA may be gone already
                pass


def optimizer_update(kind: int, arrays: list, hyper: dict) -> None:
    """One fused update per (param, grad, slot1, slot2 or None) of ``arrays``, one C++ call."""
    cupy = require("optimizer")
    _backend.cuda().optimizer_update(
        kind,
        [(p.dtype.itemsize, ptr(p), ptr(g), ptr(s1), ptr(s2), p.size) for p, g, s1, s2 in arrays],
        hyper,
        stream_ptr(cupy),
    )


def gemm_logsumexp(a, b, scale, col_term, row_term):
    """out[r] = row_term[r] + logsumexp_c(scale a_r . b_c + col_term[c]) on the GPU."""
    cupy = require("parzen")
    out = cupy.empty(a.shape[0], dtype=cupy.float64)
    _backend.cuda().gemm_logsumexp(
        a.dtype.itemsize,
        ptr(a),
        a.shape[0],
        ptr(b),
        b.shape[0],
        a.shape[1],
        float(scale),
        ptr(col_term),
        ptr(row_term),
        ptr(out),
        stream_ptr(cupy),
    )
    return out
