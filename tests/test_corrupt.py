import numpy as np
import pytest
from scipy import stats

import walkback as wb

import reference as ref

CASES = [
    (wb.SaltAndPepper(0.3), "salt_and_pepper", 0.3),
    (wb.Masking(0.4), "masking", 0.4),
    (wb.BitFlip(0.2), "bit_flip", 0.2),
    (wb.GaussianCorruption(0.7), "gaussian", 0.7),
    (None, "none", 0.0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("corruption,kind,param", CASES)
def test_corrupt_matches_reference(corruption, kind, param, dtype, rng):
    x = (rng.random((37, 53)) < 0.4).astype(dtype)
    got = wb.ops.corrupt(x, corruption, seed=11, step=4, first_chain=2)
    u = ref.uniform(11, 4, 37, 53, "corrupt", first_chain=2)
    n = ref.normal(11, 4, 37, 53, "corrupt", first_chain=2)
    want = ref.corrupt(kind, param, x, u, n)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert not np.shares_memory(got, x)


def test_corrupt_out_and_in_place(rng):
    x = (rng.random((8, 16)) < 0.5).astype(np.float32)
    expected = wb.ops.corrupt(x, wb.SaltAndPepper(0.5), seed=1)
    out = np.empty_like(x)
    assert wb.ops.corrupt(x, wb.SaltAndPepper(0.5), seed=1, out=out) is out
    np.testing.assert_array_equal(out, expected)
    wb.ops.corrupt(x, wb.SaltAndPepper(0.5), seed=1, out=x)
    np.testing.assert_array_equal(x, expected)


def test_corrupt_one_dimensional_input_keeps_its_shape():
    x = np.zeros(10, np.float32)
    assert wb.ops.corrupt(x, wb.Masking(0.5), seed=0).shape == (10,)


def test_salt_and_pepper_distribution():
    p = 0.4
    x = np.tile(np.array([0.0, 1.0], np.float32), (500, 500))
    y = wb.ops.corrupt(x, wb.SaltAndPepper(p), seed=3)
    for v in (0.0, 1.0):
        src = y[x == v]
        # P(stays v) = 1 - p + p/2, P(becomes 1 - v) = p / 2
        flipped = int(np.sum(src != v))
        n = src.size
        assert stats.binomtest(flipped, n, p / 2).pvalue > 1e-3


def test_masking_and_bit_flip_distribution():
    x = np.ones((400, 500), np.float32)
    m = wb.ops.corrupt(x, wb.Masking(0.25), seed=4)
    assert stats.binomtest(int(np.sum(m == 0)), m.size, 0.25).pvalue > 1e-3
    b = wb.ops.corrupt(x, wb.BitFlip(0.1), seed=5)
    assert stats.binomtest(int(np.sum(b == 0)), b.size, 0.1).pvalue > 1e-3


def test_gaussian_corruption_distribution():
    x = np.full((300, 400), 2.0, np.float32)
    y = wb.ops.corrupt(x, wb.GaussianCorruption(0.5), seed=6)
    z = ((y - 2.0) / 0.5).ravel().astype(np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-3


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_probabilities(bad):
    with pytest.raises(ValueError, match="p"):
        wb.SaltAndPepper(bad)
    with pytest.raises(ValueError, match="p"):
        wb.Masking(bad)
    with pytest.raises(ValueError, match="p"):
        wb.BitFlip(bad)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_bad_sigma(bad):
    with pytest.raises(ValueError, match="sigma"):
        wb.GaussianCorruption(bad)
    with pytest.raises(ValueError, match="sigma"):
        wb.Gaussian(bad)


def test_corrupt_bad_arrays():
    good = np.zeros((4, 4), np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        wb.ops.corrupt(np.zeros((4, 4), np.int32), None, seed=0)
    with pytest.raises(ValueError, match="C-contiguous"):
        wb.ops.corrupt(np.zeros((4, 8), np.float32)[:, ::2], None, seed=0)
    with pytest.raises(ValueError, match="2-D"):
        wb.ops.corrupt(np.zeros((2, 2, 2), np.float32), None, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        wb.ops.corrupt(np.full((2, 2), np.nan, np.float32), None, seed=0)
    ro = good.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        wb.ops.corrupt(good, None, seed=0, out=ro)
    with pytest.raises(ValueError, match="out"):
        wb.ops.corrupt(good, None, seed=0, out=np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="corruption"):
        wb.ops.corrupt(good, "salt", seed=0)
