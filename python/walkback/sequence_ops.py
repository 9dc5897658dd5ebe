"""1-D convolutions along sequences, the layer of the sequence GSN (issue 8), as low-level ops:
NumPy arrays (N, L, C) whose rows are positions, "same" zero padding, an odd width, stride 1,
and per-sequence lengths (positions past a sequence's length read as zeros and come out as
zeros, so padding never leaks into a shorter sequence). Weights W are (width * C, F): row
k * C + c is tap k (position l + k - width // 2) of input channel c. im2col + GEMM in C++."""

from __future__ import annotations

import numpy as np

from . import _backend, _checks

__all__ = ["conv1d", "conv1d_transpose", "conv1d_backward"]


def _seq(name, a, ndim=3):
    if _backend.is_gpu_array(a):
        raise NotImplementedError(f"{name}: the 1-D convolution runs on the CPU only")
    a = np.asarray(a)
    _checks.float_dtype(name, a)
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return np.ascontiguousarray(a)


def _width(W, channels: int) -> int:
    if channels < 1:
        raise ValueError("x: expected at least one channel")
    if W.shape[0] % channels:
        raise ValueError(
            f"W: expected (width * {channels}, F) rows for {channels} channels, got {W.shape}"
        )
    width = W.shape[0] // channels
    if width % 2 == 0:
        raise ValueError(f"W: the width ({width} taps) must be odd, for 'same' padding")
    return width


def _lengths(lengths, n: int, length: int):
    if lengths is None:
        return None
    a = np.asarray(lengths)
    if a.shape != (n,) or a.dtype.kind not in "iu":
        raise ValueError(f"lengths: expected ({n},) integers, got shape {a.shape} {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > length):
        raise ValueError(f"lengths: expected values in [0, {length}]")
    return np.ascontiguousarray(a, dtype=np.int32)


def _same_dtype(x, *others):
    for name, a in others:
        if a is not None and a.dtype != x.dtype:
            raise TypeError(f"{name}: expected dtype {x.dtype} (the dtype of x), got {a.dtype}")


def conv1d(x, W, b=None, lengths=None):
    """y[n, l] = sum_k x[n, l + k - width // 2] @ W[k * C : (k + 1) * C] + b: (N, L, F), zero
    at positions l >= lengths[n]."""
    x = _seq("x", x)
    W = _seq("W", W, 2)
    b = None if b is None else _seq("b", b, 1)
    _same_dtype(x, ("W", W), ("b", b))
    n, length, c = x.shape
    width = _width(W, c)
    if b is not None and b.shape != (W.shape[1],):
        raise ValueError(f"b: expected shape ({W.shape[1]},), got {b.shape}")
    lens = _lengths(lengths, n, length)
    cols = np.empty((n * length, W.shape[0]), x.dtype)
    y = np.empty((n, length, W.shape[1]), x.dtype)
    _backend.cpu().conv1d_forward(x, W, b, width, lens, cols, y)
    return y


def conv1d_transpose(h, W, channels, lengths=None):
    """The adjoint of conv1d's linear part: out (N, L, channels) = conv^T(h) for h (N, L, F),
    so that sum(conv1d(x, W) * h) == sum(x * conv1d_transpose(h, W, C)) on valid positions.
    It is both conv1d's input gradient and the tied ("transposed") decoding of a sequence
    GSN."""
    h = _seq("h", h)
    W = _seq("W", W, 2)
    _same_dtype(h, ("W", W))
    channels = _checks.check_int("channels", channels, 1)
    width = _width(W, channels)
    n, length, f = h.shape
    if W.shape[1] != f:
        raise ValueError(f"W: expected {f} columns (the channels of h), got {W.shape}")
    lens = _lengths(lengths, n, length)
    out = np.zeros((n, length, channels), h.dtype)
    work = np.empty((n * length, W.shape[0]), h.dtype)
    _backend.cpu().conv1d_transpose_add(h, W, width, lens, work, out)
    return out


def conv1d_backward(x, W, dy, lengths=None):
    """Gradients of sum(conv1d(x, W, b, lengths) * dy): (dx, dW, db)."""
    x = _seq("x", x)
    W = _seq("W", W, 2)
    dy = _seq("dy", dy)
    _same_dtype(x, ("W", W), ("dy", dy))
    n, length, c = x.shape
    width = _width(W, c)
    if dy.shape != (n, length, W.shape[1]):
        raise ValueError(f"dy: expected shape {(n, length, W.shape[1])}, got {dy.shape}")
    lens = _lengths(lengths, n, length)
    if lens is not None:  # dy at padded positions never reaches the output: mask it
        dy = dy * (np.arange(length)[None, :] < lens[:, None])[:, :, None]
    cols = np.empty((n * length, W.shape[0]), x.dtype)
    _backend.cpu().conv1d_im2col(x, width, lens, cols)
    dW = np.zeros_like(W)
    db = np.zeros(W.shape[1], x.dtype)
    _backend.cpu().conv1d_param_grad(cols, dy, dW, db)
    dx = conv1d_transpose(dy, W, c, lens)
    return dx, dW, db
