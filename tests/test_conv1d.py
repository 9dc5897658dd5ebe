"""The 1-D convolution along sequences (wb.ops.conv1d and friends) against a NumPy reference,
its adjoint identity, finite-difference gradients, padding and bad input."""

import numpy as np
import pytest
from sequence_reference import conv

import walkback as wb


def conv_reference(x, W, b=None, lengths=None):
    """The direct sum over taps in float64 (tests/sequence_reference.py), plus the bias."""
    n, length, _ = x.shape
    lens = np.full(n, length) if lengths is None else np.asarray(lengths)
    y = conv(x.astype(np.float64), W.astype(np.float64), lens)
    if b is not None:
        y += b * valid(lens, length)
    return y


def valid(lengths, length):
    return (np.arange(length)[None, :] < np.asarray(lengths)[:, None])[:, :, None]


@pytest.mark.parametrize("width", [1, 3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_reference(width, dtype, rng):
    x = rng.normal(size=(4, 23, 6)).astype(dtype)
    W = rng.normal(size=(width * 6, 9)).astype(dtype)
    b = rng.normal(size=9).astype(dtype)
    lengths = np.array([23, 1, 17, 0])
    y = wb.ops.conv1d(x, W, b, lengths)
    assert y.dtype == dtype and y.shape == (4, 23, 9)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y, conv_reference(x, W, b, lengths), rtol=tol, atol=tol)
    np.testing.assert_allclose(wb.ops.conv1d(x, W), conv_reference(x, W), rtol=tol, atol=tol)


def test_padding_never_leaks(rng):
    x = rng.normal(size=(3, 12, 4))
    W = rng.normal(size=(20, 5))
    lengths = np.array([5, 12, 9])
    y = wb.ops.conv1d(x, W, np.ones(5), lengths)
    x2 = x.copy()
    x2[~valid(lengths, 12)[:, :, 0]] = 1e6  # garbage past every length
    np.testing.assert_array_equal(wb.ops.conv1d(x2, W, np.ones(5), lengths), y)
    assert not y[0, 5:].any() and not y[2, 9:].any()


def test_transpose_is_the_adjoint(rng):
    """sum(conv(x) * h) == sum(x * conv^T(h)) for x, h zero past the lengths."""
    lengths = np.array([10, 4, 7])
    m = valid(lengths, 10)
    x = rng.normal(size=(3, 10, 6)) * m
    h = rng.normal(size=(3, 10, 8)) * m
    W = rng.normal(size=(30, 8))
    lhs = np.sum(wb.ops.conv1d(x, W, lengths=lengths) * h)
    rhs = np.sum(x * wb.ops.conv1d_transpose(h, W, 6, lengths))
    assert lhs == pytest.approx(rhs, rel=1e-12)
    assert not wb.ops.conv1d_transpose(h, W, 6, lengths)[1, 4:].any()


def test_backward_matches_finite_differences(rng):
    lengths = np.array([9, 6])
    x = rng.normal(size=(2, 9, 3))
    W = rng.normal(size=(15, 4))
    b = rng.normal(size=4)
    r = rng.normal(size=(2, 9, 4))

    def loss(x_, W_, b_):
        return float(np.sum(wb.ops.conv1d(x_, W_, b_, lengths) * r))

    dx, dW, db = wb.ops.conv1d_backward(x, W, r, lengths)
    eps = 1e-6
    for arr, grad, name in ((x, dx, "x"), (W, dW, "W"), (b, db, "b")):
        fd = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            save = arr[i]
            arr[i] = save + eps
            up = loss(x, W, b)
            arr[i] = save - eps
            down = loss(x, W, b)
            arr[i] = save
            fd[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7, err_msg=name)
    assert not dx[1, 6:].any()  # positions past a length get no gradient


def test_float32_backward_close_to_float64(rng):
    x = rng.normal(size=(5, 40, 7))
    W = rng.normal(size=(35, 16))
    dy = rng.normal(size=(5, 40, 16))
    want = wb.ops.conv1d_backward(x, W, dy)
    got = wb.ops.conv1d_backward(*(a.astype(np.float32) for a in (x, W, dy)))
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_bad_inputs_say_what_is_wrong(rng):
    x = rng.normal(size=(2, 5, 3))
    with pytest.raises(ValueError, match="odd"):
        wb.ops.conv1d(x, rng.normal(size=(6, 2)))
    with pytest.raises(ValueError, match=r"width \* 3"):
        wb.ops.conv1d(x, rng.normal(size=(7, 2)))
    with pytest.raises(ValueError, match="lengths"):
        wb.ops.conv1d(x, rng.normal(size=(9, 2)), lengths=[5, 6])
    with pytest.raises(ValueError, match="lengths"):
        wb.ops.conv1d(x, rng.normal(size=(9, 2)), lengths=[5])
    with pytest.raises(TypeError, match="dtype"):
        wb.ops.conv1d(x, rng.normal(size=(9, 2)).astype(np.float32))
    with pytest.raises(ValueError, match="3-D"):
        wb.ops.conv1d(x[0], rng.normal(size=(9, 2)))
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        wb.ops.conv1d(bad, rng.normal(size=(9, 2)))
    with pytest.raises(ValueError, match="dy"):
        wb.ops.conv1d_backward(x, rng.normal(size=(9, 2)), rng.normal(size=(2, 5, 3)))
    with pytest.raises(ValueError, match="columns"):
        wb.ops.conv1d_transpose(rng.normal(size=(2, 5, 4)), rng.normal(size=(9, 2)), 3)
