"""The ``walkback`` command: ``demo``, ``train`` and ``sample``."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

from . import data as wbdata
from . import images
from .dae import DAE
from .io import check_save_path, load
from .noise import BitFlip, GaussianCorruption, Masking, SaltAndPepper
from .optim import SGD, Adam


def _positive_int(spec: str) -> int:
    """An argparse type: an integer of at least 1 (a demo trains for at least one epoch)."""
    try:
        v = int(spec)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {spec!r}")
    return v


def _corruption(spec: str):
    if spec == "none":  # the plain autoencoder: no corruption
        return None
    kind, _, val = spec.partition(":")
    cls = {
        "salt_and_pepper": SaltAndPepper,
        "masking": Masking,
        "bit_flip": BitFlip,
        "gaussian": GaussianCorruption,
    }.get(kind)
    if cls is None or not val:
        raise argparse.ArgumentTypeError(
            f"--corruption: expected none or KIND:VALUE with KIND one of salt_and_pepper, "
            f"masking, bit_flip, gaussian (e.g. salt_and_pepper:0.3), got {spec!r}"
        )
    try:
        return cls(float(val))
    except ValueError as e:  # argparse would print only "invalid _corruption value"
        raise argparse.ArgumentTypeError(f"--corruption {spec!r}: {e}") from e


def _load_data(spec: str, binarize: str | None):
    if spec == "digits":
        x, _ = wbdata.load_digits()
        side = 8
    elif spec.endswith(".npy"):
        x = np.load(spec, allow_pickle=False)
        side = None
    elif spec.endswith(".npz"):
        try:
            x, _ = wbdata.load_mnist(spec)
        except wbdata.MnistArraysMissing:  # any .npz: its first array
            with np.load(spec, allow_pickle=False) as z:
                if not z.files:
                    raise ValueError(f"--data {spec}: the .npz file holds no arrays") from None
                x = z[z.files[0]]
        side = None
    else:
        x, _ = wbdata.load_mnist(spec)
        side = 28
    x = np.asarray(x, np.float32)
    if x.ndim == 0 or x.size == 0:
        raise ValueError(f"--data {spec}: expected examples in rows, got shape {x.shape}")
    x = x.reshape(len(x), -1)
    if side is None:
        r = int(round(np.sqrt(x.shape[1])))
        side = r if r * r == x.shape[1] else None
    if binarize:
        x = wbdata.binarize(x, binarize)
    return x, side


def demo(args) -> int:
    """Walk-back DAE on scikit-learn's digits (binarized at 0.5): samples, a chain animation,
    inpainting and the model file. With --model gsn: a hybrid GSN (see demo_gsn)."""
    os.makedirs(args.out, exist_ok=True)
    if args.model == "gsn":
        args.hidden = 200 if args.hidden is None else args.hidden
        return demo_gsn(args)
    if args.model == "diffusion":
        from .demo_diffusion import demo_diffusion

        return demo_diffusion(args)
    if args.model == "sequence":
        from .demo_sequence import demo_sequence

        return demo_sequence(args)
    if args.model == "shaped":
        from .demo_shaped import demo_shaped

        return demo_shaped(args)
    args.epochs = 300 if args.epochs is None else args.epochs
    args.hidden = 500 if args.hidden is None else args.hidden
    x, y = wbdata.load_digits()
    x = wbdata.binarize(x, "threshold")
    print(
        f"walkback demo: {len(x)} digits (8x8, thresholded at 0.5), DAE 64-{args.hidden}, "
        f"salt-and-pepper 0.3, {args.walkbacks} walk-back steps, {args.epochs} epochs"
    )
    model = DAE(
        64, args.hidden, activation="sigmoid", corruption=SaltAndPepper(0.3), seed=args.seed
    )
    t0 = time.perf_counter()
    hist = model.fit(
        x[:1500],
        walkbacks=args.walkbacks,
        epochs=args.epochs,
        batch_size=32,
        optimizer=Adam(lr=2e-3),
        validation=x[1500:],
        progress=not args.quiet,
        seed=args.seed,
    )
    secs = time.perf_counter() - t0
    print(
        f"trained in {secs:.1f} s: walk-back loss {hist.train_loss[-1]:.2f} nats (train), "
        f"{hist.valid_loss[-1]:.2f} (held-out digits); "
        f"{model.walkback_loss(x[1500:], walkbacks=1, seed=0):.2f} for one step"
    )
    paths = {}
    # 100 chains from random bits; show the mean of p(x | h) at the last step.
    grid = model.sample(100, steps=200, burn_in=0, seed=1, means=True)
    paths["samples"] = os.path.join(args.out, "samples.png")
    images.save_grid(grid.reshape(-1, 8, 8), paths["samples"], cols=10, scale=6)
    # One chain, frame after every step: it wanders between digit classes.
    frames = model.sample(1, steps=300, every=1, seed=2, means=True)[:, 0]
    paths["chain"] = os.path.join(args.out, "chain.gif")
    images.save_chain_gif(frames.reshape(-1, 8, 8), paths["chain"], scale=12)
    # Inpainting (book figure 20.12): right half clamped, left half resampled.
    mask = np.zeros((8, 8), bool)
    mask[:, 4:] = True
    pick = x[1500:1510]
    start = pick.copy()
    start[:, ~mask.ravel()] = np.random.default_rng(3).random((10, 32)) < 0.5
    done = model.sample(x0=start, clamp=mask.ravel(), steps=100, seed=3, means=True)
    paths["inpainting"] = os.path.join(args.out, "inpainting.png")
    images.save_inpainting(
        pick.reshape(-1, 8, 8), mask, done.reshape(-1, 8, 8), paths["inpainting"], scale=6
    )
    paths["model"] = os.path.join(args.out, "dae.safetensors")
    model.save(paths["model"])
    for k, v in paths.items():
        print(f"  {k:>10}: {v}")
    return 0


def demo_gsn(args) -> int:
    """Two GSNs on the digits (grey levels as Bernoulli means, the class as a categorical
    segment). A hybrid GSN (Zöhrer & Pernkopf 2014) classifies: its test accuracy beside
    scikit-learn's MLPClassifier of the same hidden size. A joint generative GSN draws: samples
    and class-conditional samples (y clamped). One model cannot do both well here (measured):
    the hybrid's configuration, without corruption on x, samples one blob, and corruption on x
    costs the hybrid its accuracy, since the clamped x is corrupted at prediction too."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    from .gsn import GSN
    from .noise import GaussianNoise
    from .segments import Segment

    epochs = 150 if args.epochs is None else args.epochs
    x, y = wbdata.load_digits()
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    print(
        f"walkback demo --model gsn: GSNs 74-{args.hidden} on {len(xtr)} digits "
        f"(x: 64 grey levels, y: 10 classes), {epochs} epochs each"
    )
    hybrid = GSN(
        [
            # The configuration the accuracy test measures (97.2-98.0 % over four seeds, MLP
            # 97.6 %): no corruption on x, y masked 80% of the time, x's NLL weighed 0.05.
            Segment("x", 64, "bernoulli", weight=0.05),
            Segment("y", 10, "categorical", corruption=Masking(0.8)),
        ],
        hidden=[args.hidden],
        input_noise=None,
        hidden_noise=GaussianNoise(0.1, 0.1),
        noiseless_h1=False,
        seed=args.seed,
    )
    joint = GSN(
        [
            # For pictures: salt-and-pepper 0.4 on x makes its reconstruction lean on y, so
            # clamping y picks the digit (measured: every row of the conditional grid is its
            # class); y is never masked. Its accuracy is poor (about 0.3: it never learns y
            # from x alone), which is why the hybrid above classifies.
            Segment("x", 64, "bernoulli", corruption=SaltAndPepper(0.4)),
            Segment("y", 10, "categorical"),
        ],
        hidden=[args.hidden],
        input_noise=None,
        hidden_noise=GaussianNoise(0.5, 0.5),
        noiseless_h1=False,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    for model in (hybrid, joint):
        model.fit(
            {"x": xtr, "y": ytr},
            epochs=epochs,
            batch_size=32,
            optimizer=Adam(lr=1e-3),
            progress=not args.quiet,
            seed=args.seed,
        )
    secs = time.perf_counter() - t0  # the two GSNs' training only
    acc = np.mean(hybrid.predict(xte, steps=30, seed=3) == yte)
    mlp = MLPClassifier(hidden_layer_sizes=(args.hidden,), max_iter=500, random_state=0)
    with warnings.catch_warnings():  # a reference point, converged or not after 500 epochs
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp_acc = mlp.fit(xtr, ytr).score(xte, yte)
    print(
        f"trained both GSNs in {secs:.1f} s: the hybrid's test accuracy "
        f"{acc:.4f} (MLPClassifier with {args.hidden} hidden units: {mlp_acc:.4f})"
    )
    paths = {}

    def grid(name, model, **kw):
        means = model.sample(steps=200, means=True, **kw)[:, :64]
        paths[name] = os.path.join(args.out, f"{name}.png")
        images.save_grid(means.reshape(-1, 8, 8), paths[name], cols=10, scale=6)

    grid("gsn_samples", joint, n=100, seed=1)
    # Row c: ten chains with y clamped to class c.
    grid("gsn_class_conditional", joint, x0={"y": np.repeat(np.arange(10), 10)}, clamp="y", seed=2)
    grid("gsn_hybrid_samples", hybrid, n=100, seed=1)
    for name, model in (("gsn", hybrid), ("gsn_joint", joint)):
        paths[name] = os.path.join(args.out, f"{name}.safetensors")
        model.save(paths[name])
    for k, v in paths.items():
        print(f"  {k:>21}: {v}")
    return 0


def _check_out(path: str) -> None:
    """Fails before any work when the output file could not be written."""
    try:
        check_save_path(path)
    except OSError as e:
        raise ValueError(f"--out {e}") from e


def train(args) -> int:
    _check_out(args.out)
    x, _ = _load_data(args.data, args.binarize)
    model = DAE(
        x.shape[1],
        args.hidden,
        activation=args.activation,
        corruption=args.corruption,
        reconstruction=args.reconstruction,
        seed=args.seed,
    )
    opt = Adam(lr=args.lr) if args.optimizer == "adam" else SGD(lr=args.lr, momentum=0.5)
    hist = model.fit(
        x,
        walkbacks=args.walkbacks,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=opt,
        progress=not args.quiet,
        seed=args.seed,
    )
    model.save(args.out)
    if len(hist):
        print(f"loss {hist.train_loss[-1]:.3f} after {len(hist)} epochs; model: {args.out}")
    else:
        print(f"no epoch trained (--epochs 0); the initial model: {args.out}")
    return 0


def sample(args) -> int:
    _check_out(args.out)
    model = load(args.model)
    from .diffusion import Diffusion
    from .shaped_chain import ShapedChain

    if not hasattr(model, "sample"):
        raise ValueError(
            f"--model {args.model}: a {type(model).__name__} has no chain to sample from "
            "(it predicts labels: use its predict() from Python)"
        )
    side = None
    if not args.out.endswith(".npy"):
        # Checked before sampling: a GSN with segments draws its first segment (the image).
        width = model.segments[0].size if hasattr(model, "segments") else model.visible
        side = int(round(np.sqrt(width)))
        if side * side != width:
            raise ValueError(
                f"--out: the visible size {width} is not a square image; use an .npy file"
            )
    if isinstance(model, Diffusion):  # its chain has a fixed length: T reverse steps
        x = model.sample(args.n, seed=args.seed, progress=True)
        args.steps = model.steps
    elif isinstance(model, ShapedChain):  # its states are the decoder's means already
        x = model.sample(args.n, steps=args.steps, seed=args.seed)
    else:
        x = model.sample(args.n, steps=args.steps, seed=args.seed, means=args.means)
    if side is None:
        np.save(args.out, x)
    else:
        images.save_grid(x[:, : side * side].reshape(-1, side, side), args.out)
    print(f"{args.n} samples after {args.steps} steps: {args.out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="walkback", description="Markov-chain generative models")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "demo",
        help="train a walk-back DAE (or a hybrid GSN, diffusion models, a sequence GSN, "
        "shaped chains) and draw pictures",
    )
    d.add_argument(
        "--model", choices=["dae", "gsn", "diffusion", "sequence", "shaped"], default="dae"
    )
    d.add_argument("--out", default="walkback-demo", help="output folder")
    d.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="default 300 (dae), 150 (gsn), 300 + 150 (diffusion), 6 (sequence), 40 + 40 (shaped)",
    )
    d.add_argument("--hidden", type=int, default=None, help="default 500 (dae), 200 (gsn)")
    d.add_argument("--walkbacks", type=int, default=2, help="the DAE's walk-back steps")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(fn=demo)
    t = sub.add_parser("train", help="train a DAE and save it")
    t.add_argument(
        "--data",
        default="digits",
        help="'digits', an .npy/.npz file, or a folder of MNIST IDX files",
    )
    t.add_argument("--binarize", choices=["threshold", "stochastic"], default=None)
    t.add_argument("--hidden", type=int, default=500)
    t.add_argument("--activation", default="sigmoid")
    t.add_argument(
        "--corruption",
        type=_corruption,
        default=SaltAndPepper(0.3),
        help="none, or KIND:VALUE (salt_and_pepper:0.3, masking:0.2, bit_flip:0.1, gaussian:0.5)",
    )
    t.add_argument("--reconstruction", default="bernoulli")
    t.add_argument("--walkbacks", type=int, default=1)
    t.add_argument("--epochs", type=int, default=50)
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--out", default="model.safetensors")
    t.set_defaults(fn=train)
    s = sub.add_parser("sample", help="sample from a saved model")
    s.add_argument("--model", required=True)
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--steps", type=int, default=500)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--means", action="store_true", help="save p(x | h)'s mean, not samples")
    s.add_argument("--out", default="samples.png", help=".png (a grid) or .npy")
    s.set_defaults(fn=sample)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, OSError, OverflowError) as e:
        print(f"walkback {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
