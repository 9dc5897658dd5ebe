import json
import os

import numpy as np
import pytest

import walkback as wb


@pytest.mark.parametrize("tied", [True, False])
def test_save_load_round_trip(tmp_path, tied):
    m = wb.DAE(
        12,
        7,
        activation="tanh",
        corruption=wb.GaussianCorruption(0.2),
        reconstruction=wb.Gaussian(0.5),
        tied=tied,
        seed=3,
        dtype=np.float64,
    )
    m.set_params(b0=np.arange(12.0))
    path = tmp_path / "m.safetensors"
    m.save(path)
    r = wb.load(path)
    assert type(r) is wb.DAE and r.to_config() == m.to_config()
    for k, v in m.get_params().items():
        np.testing.assert_array_equal(r.get_params()[k], v)
    np.testing.assert_array_equal(r.sample(3, steps=4, seed=1), m.sample(3, steps=4, seed=1))


def test_truncated_and_fuzzed_files_raise_value_error(tmp_path):
    m = wb.DAE(20, 10, seed=0)
    path = tmp_path / "m.safetensors"
    m.save(path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.safetensors"
    for cut in (0, 4, 8, 50, len(data) // 2, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="load"):
            wb.load(bad)
    for _ in range(40):
        b = bytearray(data)
        for i in rng.integers(0, len(b), size=3):
            b[i] = rng.integers(0, 256)
        bad.write_bytes(bytes(b))
        try:
            r = wb.load(bad)
        except ValueError:
            continue
        # flips inside the tensor bytes can give a valid file: then it must load sanely
        assert all(np.all(np.isfinite(v)) for v in r.get_params().values())


def test_foreign_and_tampered_files(tmp_path):
    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign))
    with pytest.raises(ValueError, match="not a walkback model"):
        wb.load(foreign)
    m = wb.DAE(6, 4, seed=0)
    cfg = m.to_config()
    cfg["hidden"] = 5  # tensors no longer match
    tampered = tmp_path / "tampered.safetensors"
    save_file(
        {k: v for k, v in m.get_params().items()},
        str(tampered),
        metadata={
            "format": "walkback-model",
            "version": "1",
            "model": "DAE",
            "config": json.dumps(cfg),
        },
    )
    with pytest.raises(ValueError, match="W1: expected shape"):
        wb.load(tampered)
    evil = tmp_path / "evil.safetensors"
    save_file(
        {k: v for k, v in m.get_params().items()},
        str(evil),
        metadata={"format": "walkback-model", "version": "1", "model": "os.system", "config": "{}"},
    )
    with pytest.raises(ValueError, match="unknown model kind"):
        wb.load(evil)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="load"):
        wb.load(text)
    with pytest.raises(FileNotFoundError):
        wb.load(os.path.join(tmp_path, "missing.safetensors"))
