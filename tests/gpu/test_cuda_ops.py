"""GPU ops against the CPU backend (skips: see conftest.py)."""

import numpy as np
import pytest

import walkback as wb

cupy = pytest.importorskip("cupy", reason="CuPy is not installed")


@pytest.mark.parametrize("stream", ["corrupt", "sample", 9])
def test_uniforms_bitwise_equal_to_cpu(stream):
    cpu = wb.ops.uniform(300, 257, seed=99, step=7, first_chain=5, stream=stream)
    gpu = wb.ops.uniform(300, 257, seed=99, step=7, first_chain=5, stream=stream, device="cuda")
    assert isinstance(gpu, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(gpu), cpu)


def test_normals_close_to_cpu():
    cpu = wb.ops.normal(64, 100, seed=1)
    gpu = wb.ops.normal(64, 100, seed=1, device="cuda")
    np.testing.assert_allclose(cupy.asnumpy(gpu), cpu, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "corruption", [wb.SaltAndPepper(0.3), wb.Masking(0.5), wb.BitFlip(0.2), None]
)
def test_corrupt_bitwise_equal_to_cpu(corruption, dtype):
    x = (np.random.default_rng(0).random((100, 333)) < 0.3).astype(dtype)
    want = wb.ops.corrupt(x, corruption, seed=4, step=2)
    got = wb.ops.corrupt(cupy.asarray(x), corruption, seed=4, step=2)
    assert isinstance(got, cupy.ndarray) and got.dtype == dtype
    np.testing.assert_array_equal(cupy.asnumpy(got), want)


def test_gaussian_corruption_close_to_cpu():
    x = np.zeros((50, 64), np.float32)
    want = wb.ops.corrupt(x, wb.GaussianCorruption(0.5), seed=4)
    got = wb.ops.corrupt(cupy.asarray(x), wb.GaussianCorruption(0.5), seed=4)
    np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-5, atol=1e-5)


def test_dlpack_tensor_is_accepted():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here")
    t = torch.zeros((4, 8), device="cuda")
    out = wb.ops.corrupt(t, wb.SaltAndPepper(1.0), seed=0)
    assert isinstance(out, cupy.ndarray) and set(cupy.asnumpy(out).ravel()) <= {0.0, 1.0}
