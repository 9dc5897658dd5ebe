"""``walkback demo --model diffusion``: diffusion inversion on the 2-D swiss roll (the paper's
figure 1, T = 40) and on binarized digits (binomial diffusion): the bound, a two-sample check
of the samples, and pictures (the roll at several t, digit samples, inpainting)."""

from __future__ import annotations

import math
import os
import time

import numpy as np

from . import data as wbdata
from . import eval as wbeval
from . import images, ops
from .diffusion import Diffusion
from .optim import Adam


def swiss_roll(args, paths) -> None:
    epochs = 300 if args.epochs is None else args.epochs
    x = wbdata.make_swiss_roll(12_000, noise=0.0, seed=args.seed)
    train, test, test2 = x[:8000], x[8000:10000], x[10000:]
    model = Diffusion(2, steps=40, hidden=(128, 128), basis=10, schedule="learned", seed=args.seed)
    print(
        f"swiss roll: {len(train)} points, T = 40, MLP 2-128-128, learned schedule, {epochs} epochs"
    )
    t0 = time.perf_counter()
    opt = Adam(lr=3e-3)
    for part, lr in ((2, 3e-3), (1, 3e-4)):  # two thirds at 3e-3, the rest at 3e-4
        opt.lr = lr
        model.fit(
            train,
            epochs=max(1, epochs * part // 3),
            batch_size=128,
            optimizer=opt,
            progress=not args.quiet,
            seed=args.seed + part,
        )
    secs = time.perf_counter() - t0
    bound = model.log_likelihood_bound(test, t="all", seed=1)
    samples = model.sample(2000, seed=2, every=20)  # x_20 and x_0
    e_model = wbeval.energy_distance(samples[-1], test)
    e_data = wbeval.energy_distance(test2, test)
    print(
        f"  trained in {secs:.1f} s (beta_1 learned: {model.betas[0]:.2e}, fixed "
        f"{model._fixed_betas[0]:.2e}); held-out bound {bound} "
        f"(the paper's Table 1: K = 2.35 bits, its data scaling unknown to us)"
    )
    print(
        f"  energy distance to held-out points: samples {e_model:.4f}, "
        f"a second held-out set {e_data:.4f}"
    )
    # The forward chain at t = 0, T/2, T and the reverse chain at the same times.
    xs = model._to_model(test[:1500])
    ab = model.alphabar
    rng = np.random.default_rng(4)
    fwd = [xs] + [
        math.sqrt(ab[t - 1]) * xs + math.sqrt(1 - ab[t - 1]) * rng.normal(size=xs.shape)
        for t in (20, 40)
    ]
    rev = model.sample(1500, seed=5, every=20)
    rev_T = ops.normal(1500, model.visible, seed=5, stream="init")  # that chain's own x_T
    panels = [*fwd, rev_T, model._to_model(rev[0]), model._to_model(rev[1])]
    titles = [
        "data t=0",
        "forward t=20",
        "forward t=40",
        "reverse t=40",
        "reverse t=20",
        "reverse t=0",
    ]
    paths["swiss_roll"] = os.path.join(args.out, "swiss_roll.png")
    images.save_scatter_panels(panels, titles, paths["swiss_roll"], limits=(-2.6, 2.6))


def digits(args, paths) -> None:
    epochs = 150 if args.epochs is None else args.epochs
    x, _ = wbdata.load_digits()
    x = wbdata.binarize(x, "threshold")
    train, test = x[:1500], x[1500:]
    model = Diffusion(64, steps=200, kind="binomial", hidden=(256, 256), seed=args.seed)
    print(
        f"digits: {len(train)} binarized 8x8 digits, binomial, T = 200, MLP 64-256-256, "
        f"{epochs} epochs"
    )
    t0 = time.perf_counter()
    model.fit(
        train,
        epochs=epochs,
        batch_size=64,
        optimizer=Adam(lr=1e-3),
        progress=not args.quiet,
        seed=args.seed,
    )
    secs = time.perf_counter() - t0
    bound = model.log_likelihood_bound(test, repeats=20, seed=1)
    print(f"  trained in {secs:.1f} s; held-out bound {bound}")
    grid = model.sample(100, seed=2)
    paths["digit_samples"] = os.path.join(args.out, "diffusion_digits.png")
    images.save_grid(grid.reshape(-1, 8, 8), paths["digit_samples"], cols=10, scale=6)
    mask = np.zeros((8, 8), bool)
    mask[:, 4:] = True
    pick = test[:10]
    done = model.sample(x0=pick, clamp=mask.ravel(), seed=3)
    paths["digit_inpainting"] = os.path.join(args.out, "diffusion_inpainting.png")
    images.save_inpainting(
        pick.reshape(-1, 8, 8), mask, done.reshape(-1, 8, 8), paths["digit_inpainting"], scale=6
    )
    paths["digit_model"] = os.path.join(args.out, "diffusion_digits.safetensors")
    model.save(paths["digit_model"])


def demo_diffusion(args) -> int:
    print("walkback demo --model diffusion: diffusion inversion (Sohl-Dickstein et al. 2015)")
    paths: dict = {}
    swiss_roll(args, paths)
    digits(args, paths)
    for k, v in paths.items():
        print(f"  {k:>16}: {v}")
    return 0
