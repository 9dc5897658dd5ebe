import gzip
import os

import numpy as np
import pytest
from PIL import Image

import walkback as wb
from walkback import cli

SHARED_MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def run_demo(out, model, epochs, capsys):
    """`walkback demo --model MODEL` into out; returns what it printed."""
    args = ["demo", "--model", model, "--out", str(out), "--epochs", str(epochs), "--quiet"]
    assert cli.main(args) == 0
    return capsys.readouterr().out


def assert_png(path, min_width):
    with Image.open(path) as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > min_width


def test_sequence_demo_writes_tracks_and_model(tmp_path, capsys):
    text = run_demo(tmp_path, "sequence", 1, capsys)
    assert "of the Bayes ceiling" in text and "single pass" in text
    assert_png(tmp_path / "sequence_tracks.png", 300)
    assert isinstance(wb.load(tmp_path / "sequence_gsn.safetensors"), wb.SequenceGSN)


def test_shaped_demo_writes_chains_and_models(tmp_path, capsys):
    text = run_demo(tmp_path, "shaped", 2, capsys)
    assert "unshaped" in text and "3 sigma" in text
    assert_png(tmp_path / "shaped_chains.png", 500)
    assert isinstance(wb.load(tmp_path / "shaped_chain_shaped.safetensors"), wb.ShapedChain)


def test_demo_writes_valid_pictures_and_model(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--epochs", "2", "--hidden", "32", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "walk-back loss" in text and str(out) in text
    for name in ("samples.png", "inpainting.png"):
        assert_png(out / name, 50)
    with Image.open(out / "chain.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames > 100
    m = wb.load(out / "dae.safetensors")
    assert m.visible == 64 and m.hidden == 32


def test_gsn_demo_writes_pictures_and_a_gsn_that_samples(tmp_path, capsys):
    out = tmp_path / "gdemo"
    args = ["demo", "--model", "gsn", "--out", str(out), "--epochs", "2", "--hidden", "24"]
    assert cli.main(args + ["--quiet"]) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "MLPClassifier" in text
    for name in ("gsn_samples.png", "gsn_class_conditional.png", "gsn_hybrid_samples.png"):
        with Image.open(out / name) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 50
    m = wb.load(out / "gsn.safetensors")
    assert isinstance(m, wb.GSN) and [s.name for s in m.segments] == ["x", "y"]
    joint = wb.load(out / "gsn_joint.safetensors")
    assert isinstance(joint.segments[0].corruption, wb.SaltAndPepper)
    assert not isinstance(joint.segments[1].corruption, wb.Masking)  # y is never masked
    png = tmp_path / "s.png"
    assert (
        cli.main(
            [
                "sample",
                "--model",
                str(out / "gsn.safetensors"),
                "--n",
                "4",
                "--steps",
                "3",
                "--out",
                str(png),
            ]
        )
        == 0
    )
    with Image.open(png) as im:
        assert im.format == "PNG"


def test_diffusion_demo_writes_pictures_and_a_model_that_samples(tmp_path, capsys):
    out = tmp_path / "ddemo"
    assert (
        cli.main(["demo", "--model", "diffusion", "--out", str(out), "--epochs", "2", "--quiet"])
        == 0
    )
    text = capsys.readouterr().out
    assert "energy distance" in text and "K - L_null" in text
    for name in ("swiss_roll.png", "diffusion_digits.png", "diffusion_inpainting.png"):
        with Image.open(out / name) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 50
    m = wb.load(out / "diffusion_digits.safetensors")
    assert isinstance(m, wb.Diffusion) and m.kind == "binomial"
    npy = tmp_path / "s.npy"
    assert (
        cli.main(
            [
                "sample",
                "--model",
                str(out / "diffusion_digits.safetensors"),
                "--n",
                "3",
                "--out",
                str(npy),
            ]
        )
        == 0
    )
    s = np.load(npy)
    assert s.shape == (3, 64) and set(np.unique(s)) <= {0.0, 1.0}


def test_heartbeat_and_swiss_roll_data():
    x = wb.data.make_heartbeat(1000, seed=1)
    assert x.shape == (1000, 20) and set(np.unique(x)) == {0.0, 1.0}
    assert np.all(x.sum(axis=1) == 4)
    phases = np.argmax(x[:, :5], axis=1)
    np.testing.assert_array_equal(x, np.tile(x[:, :5], 4))  # a 1 every 5th bin
    counts = np.bincount(phases, minlength=5)
    assert counts.min() > 150  # uniform phases: 200 each expected
    r = wb.data.make_swiss_roll(500, seed=0)
    assert r.shape == (500, 2) and r.dtype == np.float32
    radius = np.hypot(r[:, 0], r[:, 1])
    assert 4 < radius.min() and radius.max() < 15  # the roll's arms: t in [1.5 pi, 4.5 pi]


def test_train_and_sample_commands(tmp_path, capsys):
    x = (np.random.default_rng(0).random((60, 16)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    model = tmp_path / "m.safetensors"
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(tmp_path / "x.npy"),
                "--hidden",
                "8",
                "--epochs",
                "2",
                "--walkbacks",
                "2",
                "--corruption",
                "masking:0.2",
                "--quiet",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "sample",
                "--model",
                str(model),
                "--n",
                "6",
                "--steps",
                "5",
                "--out",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "sample",
                "--model",
                str(model),
                "--n",
                "6",
                "--steps",
                "5",
                "--out",
                str(tmp_path / "s.npy"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "s.npy").shape == (6, 16)
    assert cli.main(["sample", "--model", str(tmp_path / "nope"), "--out", "x.png"]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--corruption", "salt"])


def test_load_digits():
    x, y = wb.data.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() == 1
    assert set(np.unique(y)) == set(range(10))


def write_idx(folder, x, y, prefix, compress):
    opener = gzip.open if compress else open
    suffix = ".gz" if compress else ""
    with opener(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"), "wb") as f:
        f.write(
            (2051).to_bytes(4, "big")
            + len(x).to_bytes(4, "big")
            + (28).to_bytes(4, "big")
            + (28).to_bytes(4, "big")
            + x.tobytes()
        )
    with opener(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"), "wb") as f:
        f.write((2049).to_bytes(4, "big") + len(y).to_bytes(4, "big") + y.tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_idx_files(tmp_path, compress):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 784), dtype=np.uint8)
    y = np.array([3, 1, 4, 1, 5], np.uint8)
    write_idx(tmp_path, x, y, "t10k", compress)
    gx, gy = wb.data.load_mnist(tmp_path, split="test")
    np.testing.assert_allclose(gx, x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(gy, y)
    with pytest.raises(FileNotFoundError, match="train-images"):
        wb.data.load_mnist(tmp_path, split="train")
    np.savez(tmp_path / "m.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    nx, ny = wb.data.load_mnist(tmp_path / "m.npz", split="train")
    np.savez(tmp_path / "other.npz", images=x)
    with pytest.raises(ValueError, match="x_train"):
        wb.data.load_mnist(tmp_path / "other.npz")
    np.testing.assert_allclose(nx, gx)


def test_load_mnist_rejects_bad_files(tmp_path):
    with open(tmp_path / "t10k-images-idx3-ubyte", "wb") as f:
        f.write((1234).to_bytes(4, "big") + bytes(20))
    with open(tmp_path / "t10k-labels-idx1-ubyte", "wb") as f:
        f.write((2049).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(1))
    with pytest.raises(ValueError, match="magic 1234"):
        wb.data.load_mnist(tmp_path, split="test")


def test_load_mnist_names_swapped_corrupt_and_non_finite_files(tmp_path):
    x = np.zeros((2, 784), np.uint8)
    y = np.array([1, 2], np.uint8)
    write_idx(tmp_path, x, y, "t10k", False)
    # A label file where the images should be: said so, not loaded as 1-pixel images.
    img = tmp_path / "t10k-images-idx3-ubyte"
    lab = tmp_path / "t10k-labels-idx1-ubyte"
    img_bytes, lab_bytes = img.read_bytes(), lab.read_bytes()
    img.write_bytes(lab_bytes)
    with pytest.raises(ValueError, match="should hold images but holds labels"):
        wb.data.load_mnist(tmp_path, split="test")
    img.unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"no gzip here")
    with pytest.raises(ValueError, match="images-idx3-ubyte.gz is not a valid gzip file"):
        wb.data.load_mnist(tmp_path, split="test")
    np.savez(tmp_path / "nan.npz", x_train=np.full((2, 4), np.nan), y_train=np.zeros(2, int))
    with pytest.raises(ValueError, match="NaN or infinite"):
        wb.data.load_mnist(tmp_path / "nan.npz")
    np.savez(tmp_path / "obj.npz", x_train=np.array([None, 1], object), y_train=np.zeros(2, int))
    with pytest.raises(ValueError, match="cannot read the arrays"):
        wb.data.load_mnist(tmp_path / "obj.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable .npz"):
        wb.data.load_mnist(tmp_path / "junk.npz")
    del img_bytes


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason="shared MNIST not present")
def test_real_mnist_test_split():
    x, y = wb.data.load_mnist(SHARED_MNIST, split="test")
    assert x.shape == (10000, 784)
    np.testing.assert_array_equal(y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert abs(x.mean() - 0.1325) < 5e-4


def test_binarize():
    x = np.array([[0.2, 0.7, 0.5, 1.0]])
    np.testing.assert_array_equal(wb.data.binarize(x, "threshold"), [[0, 1, 0, 1]])
    s = wb.data.binarize(np.full((1000, 10), 0.25), "stochastic", seed=1)
    assert abs(s.mean() - 0.25) < 0.02
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        wb.data.binarize(x * 2)
    with pytest.raises(ValueError, match="method"):
        wb.data.binarize(x, "otsu")


def test_cli_failures_are_clear_and_come_before_training(tmp_path, capsys):
    x = (np.random.default_rng(0).random((30, 9)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    base = ["train", "--data", str(tmp_path / "x.npy"), "--hidden", "4", "--quiet"]
    # A folder that does not exist, and a folder as the file: refused before training.
    for out in (str(tmp_path / "missing" / "m.safetensors"), str(tmp_path)):
        assert cli.main(base + ["--epochs", "1", "--out", out]) == 2
        assert "--out" in capsys.readouterr().err
    # The demo trains at least one epoch.
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--epochs", "0", "--out", str(tmp_path / "d")])
    assert e.value.code == 2 and "--epochs: expected a positive" in capsys.readouterr().err
    # No epoch: the initial model is saved and said so.
    assert cli.main(base + ["--epochs", "0", "--out", str(tmp_path / "m0.safetensors")]) == 0
    assert "no epoch trained" in capsys.readouterr().out
    # Data files without examples.
    np.savez(tmp_path / "empty.npz")
    np.save(tmp_path / "empty.npy", np.zeros((0, 9), np.float32))
    for f in ("empty.npz", "empty.npy"):
        assert cli.main(["train", "--data", str(tmp_path / f), "--quiet"]) == 2
        assert "--data" in capsys.readouterr().err
    # A corruption level out of range says why.
    with pytest.raises(SystemExit):
        cli.main(["train", "--corruption", "salt_and_pepper:2"])
    assert "[0, 1]" in capsys.readouterr().err
    # "none": the plain autoencoder.
    plain = str(tmp_path / "plain.safetensors")
    assert cli.main(base + ["--corruption", "none", "--epochs", "1", "--out", plain]) == 0
    assert type(wb.load(plain).corruption).__name__ == "NoCorruption"
    # A model of 10 units draws no square image: said before sampling, as other errors are.
    ten = str(tmp_path / "ten.safetensors")
    wb.DAE(10, 4, seed=0).save(ten)
    capsys.readouterr()
    assert cli.main(["sample", "--model", ten, "--out", str(tmp_path / "s.png")]) == 2
    assert "not a square image; use an .npy file" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def test_sample_command_for_shaped_and_sequence_models(tmp_path, capsys):
    shaped = tmp_path / "shaped.safetensors"
    wb.ShapedChain(16, latent=2, hidden=(8,), guide_hidden=(4,), chain_len=2).save(shaped)
    args = ["sample", "--model", str(shaped), "--n", "3", "--steps", "4"]
    assert cli.main(args + ["--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 16)
    seq = tmp_path / "seq.safetensors"
    wb.SequenceGSN(3, 4, channels=(5, 6), width=3, pool=2, walkbacks=2).save(seq)
    assert cli.main(["sample", "--model", str(seq), "--out", str(tmp_path / "q.npy")]) == 2
    assert "predict" in capsys.readouterr().err
