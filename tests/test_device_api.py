"""The device API on a machine of any kind: moving models, the errors of models without a CUDA
port, where cuBLAS is looked for, and the clear failure when it is absent. (tests/gpu runs the
GPU kernels themselves.)"""

import numpy as np
import pytest

import walkback as wb
from walkback import _backend, _gpu


def test_to_rejects_unknown_devices():
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        wb.DAE(4, 3).to("tpu")


def test_to_cpu_on_a_cpu_model_is_a_no_op():
    m = wb.DAE(4, 3)
    w = m._params["W1"]
    assert m.to("cpu") is m and m.device == "cpu" and m._params["W1"] is w


@pytest.mark.parametrize(
    "model",
    [
        lambda: wb.GSN(visible=6, hidden=(5,)),
        lambda: wb.Diffusion(visible=2, steps=10, hidden=8),
    ],
)
def test_models_without_a_cuda_port_say_so(model):
    m = model()
    with pytest.raises(NotImplementedError, match="CPU only"):
        m.to("cuda")
    assert m.device == "cpu"


@pytest.mark.skipif(wb.cuda_available(), reason="a GPU is visible here")
def test_dae_to_cuda_without_a_gpu_names_what_is_missing():
    m = wb.DAE(4, 3)
    with pytest.raises(RuntimeError, match="without CUDA|CuPy|no CUDA device"):
        m.to("cuda")
    assert m.device == "cpu" and isinstance(m._params["W1"], np.ndarray)


def test_cublas_candidates_put_the_environment_first(monkeypatch, tmp_path):
    lib = tmp_path / "nvidia" / "cu13" / "lib"
    lib.mkdir(parents=True)
    (lib / "libcublas.so.13").write_bytes(b"")
    monkeypatch.setenv("WALKBACK_CUBLAS", "/opt/mine/libcublas.so.13")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = _gpu.cublas_candidates()
    assert found[0] == "/opt/mine/libcublas.so.13"
    assert str(lib / "libcublas.so.13") in found
    assert len(found) == len(set(found))


@pytest.mark.skipif(not wb.cuda_built(), reason="built without the CUDA extension")
def test_missing_cublas_is_a_clear_error(tmp_path):
    bogus = str(tmp_path / "libcublas.so.13")
    try:
        origin = _backend.cuda().load_cublas([bogus])
    except RuntimeError as e:
        msg = str(e)
        assert "cuBLAS" in msg and bogus in msg and "libcublas.so.12" in msg
        return
    pytest.skip(f"this machine has cuBLAS ({origin})")


def test_data_on_the_wrong_device_names_both(monkeypatch):
    m = wb.DAE(4, 3)
    monkeypatch.setattr(m, "device", "cuda")  # what to("cuda") sets; the check comes first
    with pytest.raises(ValueError, match="on cpu but the model is on cuda"):
        m._device_data("x", np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("value", [-1, 3])
def test_a_bad_branch_count_names_its_variable(monkeypatch, value):
    monkeypatch.setattr(_gpu, "BRANCHES", value)
    with pytest.raises(ValueError, match="WALKBACK_BRANCHES"):
        _gpu._branches()
    monkeypatch.setattr(_gpu, "BRANCHES", 2)
    assert _gpu._branches() == 2


@pytest.mark.parametrize("value", ["transpose", "", None])
def test_a_bad_w_layout_names_its_variable(monkeypatch, value):
    monkeypatch.setattr(_gpu, "W_LAYOUT", value)
    with pytest.raises(ValueError, match="WALKBACK_W_LAYOUT"):
        _gpu._w_layout()
    for name, code in (("auto", 0), ("stored", 1), ("transposed", 2)):
        monkeypatch.setattr(_gpu, "W_LAYOUT", name)
        assert _gpu._w_layout() == code


class _FakeGpuArray:
    """Looks like a CUDA array to walkback's checks; it must never be read."""

    __cuda_array_interface__ = {"shape": (3, 4), "typestr": "<f4", "version": 3}


def test_cpu_only_models_refuse_gpu_data_by_name():
    g = _FakeGpuArray()
    d = wb.Diffusion(4, steps=5, hidden=6, basis=3)
    d.set_scaling(1.0, 0.0)
    for call in (
        lambda: d.fit(g, epochs=1, progress=False),
        lambda: d.sample(x0=g, clamp=np.ones(4, bool)),
        lambda: d.denoise(g, noise_sigma=0.1),
        lambda: wb.ShapedChain(4, latent=2, hidden=3, guide_hidden=3).guide_loss_and_grad(
            np.zeros((2, 4)), g
        ),
    ):
        with pytest.raises(NotImplementedError, match="CPU only"):
            call()
