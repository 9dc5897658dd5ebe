"""Low-level operations on arrays: what other frameworks embed.

Every function takes NumPy arrays (CPU kernels) or CuPy arrays (CUDA kernels, on CuPy's current
stream) and returns arrays of the same kind; other objects with ``__dlpack__`` (PyTorch, JAX)
are accepted. float32 is the working type; float64 is used where the caller passes it.

The random stream is Philox4x32-10 keyed by the seed with counter (unit // 4, chain, step,
stream): the numbers of a chain depend only on (seed, step, chain, unit, stream), never on the
batch split, the thread count or the device. ``first_chain`` names the chain index of row 0, so
a batch split over calls draws the same numbers as one call.

Inputs (states, data) are checked: shapes, dtypes, finiteness. Parameters are checked for
shape and dtype but not for finiteness: that is one more pass over W per call, as long as a
whole chain step for one chain. NaN weights give NaN or meaningless results, as in NumPy;
the models' ``set_params`` and ``fit`` check them.
"""

from __future__ import annotations

import numpy as np

from . import _backend, _checks, _codes, _gpu
from ._progress import progress_bar
from .noise import _check_sigma, as_corruption
from .reconstruction import as_reconstruction
from .sequence_ops import conv1d, conv1d_backward, conv1d_transpose  # noqa: E402

__all__ = [
    "uniform",
    "normal",
    "corrupt",
    "chain_step",
    "walkback_grad",
    "parzen_logpdf",
    "conv1d",
    "conv1d_transpose",
    "conv1d_backward",
    "STREAMS",
]

STREAMS = dict(_codes.STREAMS)


def _stream_id(stream) -> int:
    if isinstance(stream, str):
        if stream not in STREAMS:
            raise ValueError(f"stream: expected one of {sorted(STREAMS)} or an int, got {stream!r}")
        return STREAMS[stream]
    return _checks.check_int("stream", stream, 0, 2**32 - 1)


def _random(normal: bool, chains, units, seed, step, first_chain, stream, device):
    chains = _checks.check_int("chains", chains, 0, 2**31 - 1)
    units = _checks.check_int("units", units, 0, 2**31 - 1)
    seed = _checks.check_seed("seed", seed)
    step = _checks.check_int("step", step, 0, 2**32 - 1)
    first_chain = _checks.check_first_chain(first_chain, chains)
    sid = _stream_id(stream)
    if device == "cpu":
        out = np.empty((chains, units), dtype=np.float32)
        fill = _backend.cpu().normal if normal else _backend.cpu().uniform
        fill(seed, step, first_chain, sid, out)
        return out
    if device == "cuda":
        cupy = _gpu.require("device", cublas=False)
        out = cupy.empty((chains, units), dtype=cupy.float32)
        _backend.cuda().random(
            normal,
            seed,
            step,
            first_chain,
            sid,
            chains,
            units,
            out.data.ptr,
            cupy.cuda.get_current_stream().ptr,
        )
        return out
    raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")


def uniform(chains, units, *, seed, step=0, first_chain=0, stream="corrupt", device="cpu"):
    """The uniforms in (0, 1) that walkback's kernels draw: a (chains, units) float32 array.

    ``stream`` is 'corrupt' (the corruption of the input at ``step``), 'sample' (the sampling of
    the visible units at ``step``), 'init', 'user' or an integer. Uniforms have 23 random bits:
    ``((bits >> 9) + 0.5) / 2**23`` of a Philox output word, so never 0 or 1.
    """
    return _random(False, chains, units, seed, step, first_chain, stream, device)


def normal(chains, units, *, seed, step=0, first_chain=0, stream="corrupt", device="cpu"):
    """Standard normals of the stream (Box-Muller on uniform lanes (0, 1) and (2, 3))."""
    return _random(True, chains, units, seed, step, first_chain, stream, device)


def _check_batch(name: str, x, allow_1d: bool = True):
    """A float 2-D C-contiguous NumPy or CuPy array (1-D means one row), unchanged."""
    x, device = _backend.to_backend_array(x, name)
    _checks.float_dtype(name, x)
    if x.ndim == 1 and allow_1d:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (chains, units), got shape {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array (use np.ascontiguousarray)")
    return x, device


def _data_range(a):
    """The bytes [start, end) of a C-contiguous NumPy or CuPy array."""
    start = a.__array_interface__["data"][0] if isinstance(a, np.ndarray) else a.data.ptr
    return start, start + a.nbytes


def _check_finite(name: str, x):
    if not isinstance(x, np.ndarray):
        _gpu.check_values(name, x)  # one kernel, one synchronization
    elif not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or infinite values")


def corrupt(x, corruption, *, seed, step=0, first_chain=0, out=None):
    """x~ ~ C(x~ | x) for a (chains, units) batch: row c is chain ``first_chain + c``.

    Args:
        x: float32/float64 array, (chains, units) or (units,), C-contiguous, finite.
        corruption: SaltAndPepper(p), Masking(p), BitFlip(p), GaussianCorruption(sigma) or None.
        seed, step, first_chain: the random stream's key and counters.
        out: optional array like x to write into (may be x itself).
    Returns:
        The corrupted array (``out`` when given), same shape, dtype and device as x.
    """
    shape = np.shape(x)
    x, device = _check_batch("x", x)
    c = as_corruption(corruption)
    seed = _checks.check_seed("seed", seed)
    step = _checks.check_int("step", step, 0, 2**32 - 1)
    first_chain = _checks.check_first_chain(first_chain, x.shape[0])
    _check_finite("x", x)
    if out is None:
        result = result_view = x.copy()
    else:
        result, odev = _backend.to_backend_array(out, "out")
        if odev != device:
            raise ValueError(f"out: x is on {device} but out is on {odev}")
        if result.shape != shape or result.dtype != x.dtype:
            raise ValueError(
                f"out: expected shape {shape} and dtype {x.dtype}, got {result.shape} "
                f"{result.dtype}"
            )
        if device == "cpu" and not result.flags.writeable:
            raise ValueError("out: expected a writeable array")
        if not result.flags.c_contiguous:
            raise ValueError("out: expected a C-contiguous array")
        (x0, x1), (o0, o1) = _data_range(x), _data_range(result)
        if o0 != x0 and o0 < x1 and x0 < o1:
            raise ValueError("out: overlaps x without being x itself; pass x, or a separate array")
        result_view = result.reshape(x.shape)
    if device == "cpu":
        _backend.cpu().corrupt(x, result_view, c.code, c.param, seed, step, first_chain)
    else:
        cupy = _gpu.require("x", cublas=False)
        _backend.cuda().corrupt(
            x.data.ptr,
            result_view.data.ptr,
            x.shape[0],
            x.shape[1],
            x.dtype.itemsize,
            c.code,
            c.param,
            seed,
            step,
            first_chain,
            cupy.cuda.get_current_stream().ptr,
        )
    return result.reshape(shape) if out is None else result


def chain_step(
    x,
    W1,
    b1,
    b0,
    U1=None,
    *,
    activation="sigmoid",
    corruption=None,
    reconstruction="bernoulli",
    seed,
    step=0,
    first_chain=0,
    clamp=None,
    steps=1,
    return_mean=False,
):
    """``steps`` steps of the DAE chain x -> x~ ~ C(x~|x) -> h = act(x~ W1 + b1) ->
    w = out(h W1^T + b0) (or h U1 + b0 when untied) -> x' ~ p(x | w).

    Args:
        x: (chains, D) float32/float64 state; not modified. Binary for a Bernoulli chain.
        W1 (D, H), b1 (H,), b0 (D,), U1 (H, D) or None: parameters, same dtype as x.
        clamp: optional bool mask (D,) or (chains, D): those units keep their values in x
            (they are still corrupted before encoding, as in training).
        step: the stream's step index of the first step (step k corrupts with stream step k
            and samples with stream step k).
        return_mean: also return w, the mean of p(x | h) at the last step.
    Returns:
        x' (chains, D), or (x', w) when ``return_mean``.
    """
    one_row = np.ndim(x) == 1  # a (D,) state comes back as (D,), as from corrupt
    x, kw, device = _dae_arrays(
        "chain_step", x, W1, b1, b0, U1, activation, corruption, reconstruction, False
    )
    binary = kw["reconstruction"] == _codes.RECONSTRUCTIONS["bernoulli"]
    if device != "cuda":  # on the GPU the chain's driver checks its copy of x (below)
        _check_finite("x", x)
        if binary:
            _checks.check_binary("x", x)
    n, d = x.shape
    seed = _checks.check_seed("seed", seed)
    step = _checks.check_int("step", step, 0, 2**32 - 1)
    first_chain = _checks.check_first_chain(first_chain, n)
    steps = _checks.check_int("steps", steps, 1, 2**31 - 1)
    _checks.check_steps_fit(step, steps)
    xp = _backend.array_module(x)
    state = x.copy()
    cl = None if clamp is None else _clamp_mask(clamp, n, d, device)
    means = xp.empty_like(state) if return_mean else None
    run = dict(
        seed=seed,
        first_step=step,
        first_chain=first_chain,
        steps=steps,
        burn_in=0,
        every=0,
        clamp=cl,
        records=None,
        means=means,
        record_means=False,
    )
    if device == "cuda":
        # Finite and binary in one pass, waited for without stalling the GPU's queue.
        _gpu.dae_chain(state, kw, **run, check="binary" if binary else "finite")
    else:
        _backend.cpu().dae_chain(state, **kw, **run)
    if one_row:
        state = state.reshape(-1)
        means = None if means is None else means.reshape(-1)
    return (state, means) if return_mean else state


def _clamp_mask(clamp, n, d, device):
    """A uint8 clamp mask on the device of the chain (a CuPy mask is checked on the host)."""
    if _backend.is_gpu_array(clamp):
        clamp, _ = _backend.to_backend_array(clamp, "clamp")
        clamp = clamp.get()
    cl = _checks.as_clamp(clamp, n, d)
    if device == "cuda":
        return _gpu.clamp_to_device(cl, _gpu.require("clamp"))
    return cl


def _dae_arrays(fn, x, W1, b1, b0, U1, activation, corruption, reconstruction, check_x=True):
    """x checked, the DAE kernel's keyword arguments from raw parameter arrays, and the device
    they all live on (mixing devices is an error). check_x=False leaves the values of x to the
    caller (the GPU walk-back kernel checks them itself, without a synchronization)."""
    x, device = _check_batch("x", x)
    if device == "cuda":
        _gpu.check_device("x", x, _gpu.require(fn))
    dt = x.dtype
    d = x.shape[1]
    W1 = _param("W1", W1, dt, (d, None), device)
    h = W1.shape[1]
    rec = as_reconstruction(reconstruction)
    corr = as_corruption(corruption)
    if check_x:
        _check_finite("x", x)
    kw = dict(
        W1=W1,
        b1=_param("b1", b1, dt, (h,), device),
        b0=_param("b0", b0, dt, (d,), device),
        U1=None if U1 is None else _param("U1", U1, dt, (h, d), device),
        activation=_checks.check_activation(activation),
        reconstruction=rec.code,
        sigma=rec.sigma,
        corruption=corr.code,
        corruption_param=corr.param,
    )
    return x, kw, device


def walkback_grad(
    x,
    W1,
    b1,
    b0,
    U1=None,
    *,
    activation="sigmoid",
    corruption=None,
    reconstruction="bernoulli",
    walkbacks=1,
    seed,
    first_chain=0,
    reconstruct="all",
    wait=False,
):
    """The walk-back loss of a DAE on the batch x and its gradients, from raw arrays (what
    DAE.loss_and_grad computes; see it for the definition).

    On the GPU (CuPy inputs) nothing waits for the GPU by default: the loss comes back as a
    0-d float64 CuPy array that the GPU fills, so a training loop keeps the GPU busy while
    Python prepares the next step. Data that is not finite, or outside [0, 1] for a Bernoulli
    model, then gives a NaN loss (checking it would cost a synchronization per call);
    ``wait=True`` waits, returns a float and raises ValueError for such data, as the CPU does.

    Returns:
        (loss, grads): the loss (a float; a 0-d CuPy array on the GPU unless ``wait``) and a
        dict with W1, b1, b0 (and U1 when given), arrays of the parameters' shapes and dtype.
    """
    x, kw, device = _dae_arrays(
        "walkback_grad", x, W1, b1, b0, U1, activation, corruption, reconstruction, False
    )
    if x.shape[0] == 0:
        raise ValueError(f"x: expected at least one row, got shape {x.shape}")
    if device == "cpu":
        _check_finite("x", x)
        if kw["reconstruction"] == _codes.RECONSTRUCTIONS["bernoulli"] and (
            x.min() < 0 or x.max() > 1
        ):
            raise ValueError("x: a Bernoulli model needs data in [0, 1]")
    if reconstruct not in ("all", "last"):
        raise ValueError(f"reconstruct: expected 'all' or 'last', got {reconstruct!r}")
    xp = _backend.array_module(x)
    grads = {k: xp.empty_like(kw[k]) for k in ("W1", "b1", "b0", "U1") if kw[k] is not None}
    run = dict(
        seed=_checks.check_seed("seed", seed),
        first_chain=_checks.check_first_chain(first_chain, x.shape[0]),
        walkbacks=_checks.check_int("walkbacks", walkbacks, 1, 10_000),  # steps 0 .. 9999
        last_only=reconstruct == "last",
    )
    if device == "cuda":
        loss = _gpu.dae_walkback(x, kw, grads=grads, wait=bool(wait), **run)
    else:
        loss = _backend.cpu().dae_walkback(x, **kw, **run, **{f"g{k}": v for k, v in grads.items()})
    return loss, grads


def _param(name, a, dtype, shape, device):
    a, pdev = _backend.to_backend_array(a, name)
    if pdev != device:
        raise ValueError(f"{name}: x is on {device} but {name} is on {pdev}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the dtype of x), got {a.dtype}")
    if a.ndim != len(shape) or any(
        s is not None and s != e for s, e in zip(shape, a.shape, strict=True)
    ):
        want = str(tuple("*" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"{name}: expected shape {want}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array")
    return a


def parzen_logpdf(samples, x, sigma, batch_size=None, progress=False):
    """Per-row Parzen-window log-densities log p(x_j) (float64, shape (M,)) under the isotropic
    Gaussian mixture of width ``sigma`` centred on the rows of ``samples``; see
    walkback.eval.parzen_log_likelihood. float32 or float64 inputs (both the same dtype).
    CuPy (or other CUDA) arrays run on the GPU and give a CuPy array."""
    if _backend.is_gpu_array(samples) or _backend.is_gpu_array(x):
        return _parzen_gpu(samples, x, sigma)
    s, xx = _checks.as_numeric("samples", samples), _checks.as_numeric("x", x)
    _parzen_shapes(s, xx)
    dt = np.float64 if np.float64 in (s.dtype, xx.dtype) else np.float32
    s = np.ascontiguousarray(s, dtype=dt)
    xx = np.ascontiguousarray(xx, dtype=dt)
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(xx))):
        raise ValueError("parzen_logpdf: samples and x must be finite")
    sigma = _check_sigma("sigma", sigma)
    step = len(xx) if batch_size is None else _checks.check_int("batch_size", batch_size, 1)
    out = np.empty(len(xx))
    bar = progress_bar((len(xx) + step - 1) // step, progress, "parzen", "batch")
    try:
        for b in range(0, len(xx), step):
            _backend.cpu().parzen_logpdf(s, xx[b : b + step], sigma, out[b : b + step])
            bar.update(1)
    finally:
        bar.close()
    return out


def _parzen_shapes(s, xx):
    if s.ndim != 2 or xx.ndim != 2 or s.shape[1] != xx.shape[1]:
        raise ValueError(
            f"parzen_logpdf: expected samples (N, D) and x (M, D), got {s.shape} and {xx.shape}"
        )
    if len(s) == 0 or len(xx) == 0 or s.shape[1] == 0:
        raise ValueError("parzen_logpdf: samples and x need at least one row and one column")


def _parzen_gpu(samples, x, sigma):
    """The GPU Parzen kernel, with the CPU kernel's preparation (walkback/parzen.cpp): both
    sets centred in float64 on the centres' mean, norms in float64, and float64 throughout
    where float32 rounding of the cross terms would cost more than 2e-5 of the result."""
    s, sdev = _backend.to_backend_array(samples, "samples")
    xx, xdev = _backend.to_backend_array(x, "x")
    if sdev != xdev:
        raise ValueError(f"parzen_logpdf: samples are on {sdev} but x is on {xdev}")
    cupy = _gpu.require("parzen_logpdf")
    for name, a in (("samples", s), ("x", xx)):
        _gpu.check_device(name, a, cupy)
    _parzen_shapes(s, xx)
    _checks.float_dtype("samples", s)
    _checks.float_dtype("x", xx)
    if not (bool(cupy.isfinite(s).all()) and bool(cupy.isfinite(xx).all())):
        raise ValueError("parzen_logpdf: samples and x must be finite")
    sigma = _check_sigma("sigma", sigma)
    n, d = s.shape
    inv = 1.0 / (2.0 * sigma * sigma)
    if not (inv > 0 and np.isfinite(inv)):
        raise ValueError("parzen: sigma too small or too large for 1 / (2 sigma^2)")
    lognorm = np.log(n) + d * (np.log(sigma) + 0.5 * np.log(2.0 * np.pi))
    s64 = s.astype(cupy.float64)
    mean = s64.mean(axis=0)
    sc = s64 - mean
    s_norm = (sc * sc).sum(axis=1)
    err = 2.0**-24 * float(s_norm.max()) * 2.0 * inv * np.sqrt(d)
    wide = np.float64 in (s.dtype, xx.dtype) or err > 2e-5 * max(1.0, abs(lognorm))
    work = cupy.float64 if wide else cupy.float32
    xc = xx.astype(cupy.float64) - mean
    row = -(xc * xc).sum(axis=1) * inv - lognorm
    col = cupy.ascontiguousarray((-s_norm * inv).astype(work))
    return _gpu.gemm_logsumexp(
        cupy.ascontiguousarray(xc.astype(work)),
        cupy.ascontiguousarray(sc.astype(work)),
        2.0 * inv,
        col,
        cupy.ascontiguousarray(row),
    )
