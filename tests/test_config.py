import io

import numpy as np
import pytest

import walkback as wb
from walkback import _backend


def test_show_config_reports_blas_threads_and_cuda():
    buf = io.StringIO()
    info = wb.show_config(file=buf)
    text = buf.getvalue()
    assert "OpenBLAS" in info["blas"] and "OpenBLAS" in text
    assert info["threads"] == wb.get_num_threads() >= 1
    supported = _backend.cpu().packed_gemm_supported()
    assert ("kernel" in info["packed_gemm"]) == supported
    assert info["cuda_devices"] == (0 if not wb.cuda_built() else info["cuda_devices"])
    assert wb.cuda_available() == (wb.cuda_built() and info["cuda_devices"] > 0)


def test_set_num_threads_round_trip():
    n = wb.get_num_threads()
    try:
        wb.set_num_threads(3)
        assert wb.get_num_threads() == 3
    finally:
        wb.set_num_threads(n)
    assert wb.get_num_threads() == n


def _results(x_dae, x_shaped, x_diff):
    """Seeded results of every kind of product the models make, as bytes."""
    dae = wb.DAE(784, 500, seed=1)  # B = 16: OpenBLAS products cut into column slices
    out = [dae.sample(x0=x_dae, steps=1, seed=2, means=True)]
    loss, g = dae.loss_and_grad(x_dae, walkbacks=2, seed=3)
    out += [np.float64(loss), *[g[k] for k in sorted(g)]]
    sc = wb.ShapedChain(784, latent=50, hidden=(500, 500), guide_hidden=(8,), chain_len=2, seed=1)
    out.append(sc.sample(100, seed=2))
    parts, g = sc.loss_and_grads(x_shaped, seed=3)
    out += [np.float64(parts["total"]), *[g[k] for k in sorted(g)]]
    diff = wb.Diffusion(200, steps=30, kind="binomial", hidden=(100, 100), basis=4, seed=1)
    loss, g = diff.loss_and_grad(x_diff, seed=1)
    out += [np.float64(loss), *[g[k] for k in sorted(g)]]
    return [np.ascontiguousarray(a).tobytes() for a in out]


def test_results_do_not_depend_on_the_thread_count():
    # Shapes where OpenBLAS's kernel (picked per call by shape) used to change with the slices
    # that the thread count made: the DAE at 16 rows, the shaped chain's guide on 300 rows of
    # a narrow layer, the diffusion's readout on 256 rows.
    rng = np.random.default_rng(0)
    x_dae = (rng.random((16, 784)) < 0.3).astype(np.float32)
    x_shaped = (rng.random((150, 784)) < 0.3).astype(np.float32)
    x_diff = (rng.random((256, 200)) < 0.3).astype(np.float32)
    n = wb.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 3):
            wb.set_num_threads(threads)
            runs.append(_results(x_dae, x_shaped, x_diff))
    finally:
        wb.set_num_threads(n)
    assert runs[0] == runs[1] == runs[2]


def test_set_reproducible_round_trip():
    assert wb.get_reproducible() is True
    try:
        wb.set_reproducible(False)
        assert wb.get_reproducible() is False
        m = wb.DAE(20, 8, seed=0)
        assert m.sample(n=4, steps=2, seed=1).shape == (4, 20)
    finally:
        wb.set_reproducible(True)
    assert wb.get_reproducible() is True
    with pytest.raises(TypeError, match="on"):
        wb.set_reproducible("yes")
