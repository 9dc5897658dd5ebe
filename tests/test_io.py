import json
import os

import numpy as np
import pytest

import walkback as wb


def _write_crafted(path, model, cfg):
    """A model file holding `model`'s tensors under the configuration `cfg` (a dict, or the
    JSON text itself), without a checksum, as files written before it."""
    from safetensors.numpy import save_file

    text = cfg if isinstance(cfg, str) else json.dumps(cfg)
    meta = {"format": "walkback-model", "version": "1", "model": type(model).__name__}
    save_file(model.get_params(), str(path), metadata={**meta, "config": text})


def _peak_bytes_of_a_refused_load(path) -> int:
    """The most memory Python allocated while load refused the file's tensors."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="expected shape"):
            wb.load(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


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


def test_crafted_configurations_raise_value_error(tmp_path):
    g = wb.GSN(6, hidden=[4], seed=0)
    path = tmp_path / "g.safetensors"
    _write_crafted(path, g, dict(g.to_config(), input_noise=None))
    with pytest.raises(ValueError, match="damaged configuration"):
        wb.load(path)
    d = wb.Diffusion(4, steps=5, hidden=6, basis=3)
    _write_crafted(path, d, dict(d.to_config(), steps=10**7, basis=1000))
    with pytest.raises(ValueError, match="damaged configuration"):
        wb.load(path)


def test_save_to_a_missing_folder_or_a_folder_says_so(tmp_path):
    m = wb.DAE(6, 4, seed=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        m.save(tmp_path / "missing" / "m.safetensors")
    with pytest.raises(IsADirectoryError, match="folder"):
        m.save(tmp_path)


def test_damaged_tensor_bytes_and_missing_config_keys_are_found(tmp_path):
    path = tmp_path / "m.safetensors"
    wb.DAE(8, 4, seed=0).save(path)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x40  # the last byte of the last tensor
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        wb.load(bad)
    s = wb.ShapedChain(6, latent=2, hidden=4, guide_hidden=3, chain_len=3)
    cfg = s.to_config()
    del cfg["chain_len"]  # would silently become the default, 6
    _write_crafted(path, s, cfg)
    with pytest.raises(ValueError, match="chain_len"):
        wb.load(path)
    _write_crafted(path, s, "[" * 5000 + "]" * 5000)
    with pytest.raises(ValueError, match="damaged configuration"):
        wb.load(path)
    with pytest.raises(IsADirectoryError):
        wb.load(tmp_path)


def test_a_crafted_size_in_the_configuration_allocates_nothing(tmp_path):
    m = wb.DAE(24, 4, seed=0)
    path = tmp_path / "big.safetensors"
    # 3.8 GB of weights, in a file of a few KB
    _write_crafted(path, m, dict(m.to_config(), hidden=40_000_000))
    assert _peak_bytes_of_a_refused_load(path) < 10_000_000
    # A loaded model is whole: every parameter, and it samples as the saved one.
    m.save(path)
    back = wb.load(path)
    assert set(back.get_params()) == set(m.get_params())
    np.testing.assert_array_equal(back.sample(n=3, steps=2, seed=1), m.sample(n=3, steps=2, seed=1))


def test_the_checksum_covers_the_configuration_and_loading_keeps_the_seed_stream(tmp_path):
    path = tmp_path / "s.safetensors"
    wb.ShapedChain(6, latent=2, hidden=4, guide_hidden=3, chain_len=3).save(path)
    raw = path.read_bytes()
    altered = raw.replace(b'\\"chain_len\\": 3', b'\\"chain_len\\": 9')
    assert altered != raw
    (tmp_path / "t.safetensors").write_bytes(altered)
    with pytest.raises(ValueError, match="checksum"):
        wb.load(tmp_path / "t.safetensors")
    # A loaded model draws seed=None calls as a fresh one does.
    wb.DAE(6, 4, seed=3).save(path)
    np.testing.assert_array_equal(wb.load(path).sample(n=3), wb.DAE(6, 4, seed=3).sample(n=3))


def test_a_crafted_diffusion_length_allocates_nothing_before_the_check(tmp_path):
    d = wb.Diffusion(4, steps=5, hidden=6, basis=3)
    path = tmp_path / "d.safetensors"
    # The tensors no longer fit the configuration, whose T-long tables would be 800 MB.
    _write_crafted(path, d, dict(d.to_config(), steps=10**7, basis=10, hidden=[7]))
    assert _peak_bytes_of_a_refused_load(path) < 10_000_000
