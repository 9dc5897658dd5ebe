"""Data sets and binarization. Likelihoods under different binarizations cannot be compared
(Goodfellow et al., Deep Learning, section 20.14): every benchmark states the one it uses."""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib

import numpy as np

from . import _checks, ops
from .data_sequences import HMMSequences, load_cb513, make_hmm_sequences  # noqa: F401


def load_digits():
    """scikit-learn's 8x8 digits: (x, y) with x (1797, 64) float32 in [0, 1] (grey levels
    0-16 divided by 16) and y (1797,) int64 labels."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def _read_idx(path, kind):
    """The body of an IDX file of `kind` ('images' or 'labels')."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"load_mnist: {path} is not a valid gzip file ({e})") from e
    if len(raw) < 8:
        raise ValueError(f"load_mnist: {path} is too short to be an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    if magic in (2049, 2051) and magic != (2051 if kind == "images" else 2049):
        other = "labels" if magic == 2049 else "images"
        raise ValueError(f"load_mnist: {path} should hold {kind} but holds {other}")
    if magic == 2051:
        if len(raw) < 16:
            raise ValueError(f"load_mnist: {path} is too short for an IDX image header")
        n, rows, cols = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
        body = np.frombuffer(raw, np.uint8, offset=16)
        if body.size != n * rows * cols:
            raise ValueError(
                f"load_mnist: {path} holds {body.size} pixels, header says {n} x {rows} x {cols}"
            )
        return body.reshape(n, rows * cols)
    if magic == 2049:
        n = int.from_bytes(raw[4:8], "big")
        body = np.frombuffer(raw, np.uint8, offset=8)
        if body.size != n:
            raise ValueError(f"load_mnist: {path} holds {body.size} labels, header says {n}")
        return body
    raise ValueError(f"load_mnist: {path} is not an MNIST IDX file (magic {magic})")


_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class MnistArraysMissing(ValueError):
    """An .npz file given to load_mnist without its x_<split> / y_<split> arrays."""


def load_mnist(path, split="train"):
    """MNIST from the four IDX files (gzipped or not) in a folder, or from an .npz file with
    arrays x_train, y_train, x_test, y_test. Returns (x, y): x (n, 784) float32 in [0, 1]
    (grey levels / 255, not binarized), y (n,) int64."""
    if split not in _FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    path = os.fspath(path)
    if path.endswith(".npz"):
        try:
            z = np.load(path, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise ValueError(f"load_mnist: {path} is not a readable .npz file ({e})") from e
        with z:
            missing = [k for k in (f"x_{split}", f"y_{split}") if k not in z.files]
            if missing:
                raise MnistArraysMissing(
                    f"load_mnist: {path} has no array {missing[0]!r} (it holds {z.files})"
                )
            try:
                x, y = z[f"x_{split}"], z[f"y_{split}"]
            except (ValueError, OSError, zipfile.BadZipFile) as e:  # object arrays, bad members
                raise ValueError(f"load_mnist: cannot read the arrays of {path} ({e})") from e
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim < 2 or len(x) == 0 or x.size == 0:
            raise ValueError(f"load_mnist: x_{split} holds no images (shape {x.shape})")
        if y.shape != (len(x),):
            raise ValueError(f"load_mnist: {len(x)} images but labels of shape {y.shape}")
        if x.dtype.kind not in "biuf" or y.dtype.kind not in "biu":
            raise TypeError(f"load_mnist: expected numeric images and integer labels in {path}")
        x = x.reshape(len(x), -1).astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"load_mnist: x_{split} contains NaN or infinite values")
        # Grey levels 0-255 (as MNIST's files), or values already in [0, 1] (binary too).
        if x.min() < 0 or x.max() > 255:
            raise ValueError("load_mnist: expected grey levels in [0, 255] or values in [0, 1]")
        scale = 255.0 if x.max() > 1 else 1.0
        return (x / scale).astype(np.float32), y.astype(np.int64)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"load_mnist: {path} is neither a folder nor an .npz file")
    out = []
    for stem, kind in zip(_FILES[split], ("images", "labels"), strict=True):
        for name in (stem, stem + ".gz"):
            p = os.path.join(path, name)
            if os.path.isfile(p):
                out.append(_read_idx(p, kind))
                break
        else:
            raise FileNotFoundError(f"load_mnist: {stem}[.gz] not found in {path}")
    x, y = out
    if len(x) != len(y):
        raise ValueError(f"load_mnist: {len(x)} images but {len(y)} labels")
    return (x / 255.0).astype(np.float32), y.astype(np.int64)


def binarize(x, method="threshold", seed=0):
    """Binary data from grey levels in [0, 1]: 'threshold' (x > 0.5) or 'stochastic' (one draw
    of Bernoulli(x) from walkback's stream with ``seed``)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"x: expected a numeric array, got dtype {a.dtype}")
    if a.size and (np.nanmin(a) < 0 or np.nanmax(a) > 1 or np.isnan(a).any()):
        raise ValueError("x: expected values in [0, 1]")
    if method == "threshold":
        return (a > 0.5).astype(np.float32)
    if method == "stochastic":
        if a.size == 0:
            return np.zeros(a.shape, np.float32)
        flat = a.reshape(len(a), -1) if a.ndim > 1 else a.reshape(1, -1)
        u = ops.uniform(
            flat.shape[0], flat.shape[1], seed=_checks.check_seed("seed", seed), stream="user"
        )
        return (u < flat).astype(np.float32).reshape(a.shape)
    raise ValueError(f"method: expected 'threshold' or 'stochastic', got {method!r}")


def make_swiss_roll(n, noise=0.0, seed=0):
    """The 2-D swiss roll of the diffusion paper's figure 1: scikit-learn's 3-D roll seen along
    its length (columns x and z), (n, 2) float32."""
    from sklearn.datasets import make_swiss_roll as sk_roll

    n = _checks.check_int("n", n, 1, 2**31 - 1)
    seed = _checks.check_seed("seed", seed)
    # scikit-learn takes 32-bit seeds; a larger one goes through NumPy's SeedSequence, so that
    # seeds 0 and 2**32 give different rolls (seeds below 2**32 keep their rolls).
    state = (
        seed
        if seed < 2**32
        else np.random.RandomState(np.random.MT19937(np.random.SeedSequence(seed)))
    )
    x, _ = sk_roll(n_samples=n, noise=float(noise), random_state=state)
    return np.ascontiguousarray(x[:, [0, 2]], dtype=np.float32)


def make_heartbeat(n, length=20, period=5, seed=0):
    """The diffusion paper's binary heartbeat: sequences of ``length`` bits with a 1 every
    ``period``-th bin at a uniformly drawn phase, so the data's entropy is log2(period) bits
    per sequence. (n, length) float32."""
    n = _checks.check_int("n", n, 1, 2**31 - 1)
    length = _checks.check_int("length", length, 1, 10**6)
    period = _checks.check_int("period", period, 1, length)
    phase = np.random.default_rng(_checks.check_seed("seed", seed)).integers(0, period, size=n)
    i = np.arange(length)
    return ((i[None, :] - phase[:, None]) % period == 0).astype(np.float32)


def make_ring_mixture(n, components=8, sigma=0.03, radius=0.35, seed=0):
    """A 2-D mixture of ``components`` Gaussians (standard deviation ``sigma``) evenly spaced on
    a circle of ``radius`` around (0.5, 0.5), clipped to the unit square (so the points can be
    Bernoulli means): x (n, 2) float32, and the centres (components, 2)."""
    n = _checks.check_int("n", n, 1)
    components = _checks.check_int("components", components, 1)
    for name, v in (("sigma", sigma), ("radius", radius)):
        v = _checks.check_float(name, v)
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {v}")
    ang = 2 * np.pi * np.arange(components) / components
    centers = 0.5 + radius * np.stack([np.cos(ang), np.sin(ang)], 1)
    r = np.random.default_rng(_checks.check_seed("seed", seed))
    x = centers[r.integers(0, components, n)] + sigma * r.normal(size=(n, 2))
    return np.clip(x, 0, 1).astype(np.float32), centers
