"""``walkback demo --model shaped``: ABC-shaped VAE chains (Bachman & Precup 2015) on a 2-D
mixture of 8 Gaussians, shaped against unshaped, with the chains' states drawn as point
clouds."""

from __future__ import annotations

import os
import time

import numpy as np

from .data import make_ring_mixture
from .images import save_scatter_panels
from .optim import Adam
from .shaped_chain import ShapedChain

# The mixture chain's KL weight: where its unshaped chain falls off the ring (ring_chain).
RING_KLD = 0.05


def ring_chain(shaping: float, seed: int, kld: float = RING_KLD) -> ShapedChain:
    """The 2-D mixture's chain: the demo's, and the one benchmarks/shaped.py --mixture
    measures (64-64 relu units, latent 2, 6 steps).

    The KL weight decides whether shaping has anything to correct (RESULTS.md): at 0.02 the
    model is nearly an autoencoder and its unshaped chain already stays on the ring (1.6% of
    the mass off it, eight seeds); from 0.05 up the unshaped chain falls off the ring (89% at
    0.05, 16 seeds) and shaping pulls it back part of the way. The demo uses 0.05 to show
    that."""
    return ShapedChain(
        2,
        latent=2,
        hidden=(64, 64),
        guide_hidden=(32,),
        chain_len=6,
        kld=kld,
        shaping=shaping,
        seed=seed,
    )


def fit_ring_chain(model: ShapedChain, x, epochs: int, seed: int, progress: bool = False):
    """epochs of VAE pretraining, then epochs of shaping, Adam 3e-3 for both networks."""
    return model.fit(
        x,
        pretrain_epochs=epochs,
        shaping_epochs=epochs,
        optimizer=Adam(3e-3),
        guide_optimizer=Adam(3e-3),
        progress=progress,
        seed=seed,
    )


def demo_shaped(args) -> int:
    print(
        "walkback demo --model shaped: VAE chains with and without ABC shaping "
        f"(Bachman & Precup 2015) on a 2-D mixture of 8 Gaussians; KL weight {RING_KLD}, where "
        "the unshaped chain often falls off the ring or onto a few components (16 seeds: "
        "benchmarks/RESULTS.md; one seed varies a lot, try --seed)"
    )
    k, sigma = 8, 0.03
    x, centers = make_ring_mixture(4000, k, sigma, seed=args.seed)
    epochs = 40 if args.epochs is None else args.epochs
    panels, titles = [x[:2000]], ["data"]
    paths = {}
    for shaping in (0.0, 0.5):
        model = ring_chain(shaping, args.seed)
        t0 = time.perf_counter()
        fit_ring_chain(model, x, epochs, args.seed, progress=not args.quiet)
        chain = model.sample(2000, steps=50, every=1, seed=args.seed + 1)
        d = np.sqrt(((chain[-1][:, None, :] - centers[None]) ** 2).sum(-1))
        far = float(np.mean(d.min(1) > 3 * sigma))
        modes = np.bincount(d.argmin(1), minlength=k)
        label = "shaped" if shaping else "unshaped"
        held = int(np.sum(modes >= 0.01 * len(d)))
        print(
            f"  {label:>8} ({time.perf_counter() - t0:.0f} s): {far:.1%} of the chains' states "
            f"after 50 steps lie more than 3 sigma from every component; {held} of {k} "
            f"components hold at least 1% of them; per component {modes.tolist()}"
        )
        panels += [chain[0], chain[-1]]
        titles += [f"{label}, step 1", f"{label}, step 50"]
        paths[f"{label} model"] = os.path.join(args.out, f"shaped_chain_{label}.safetensors")
        model.save(paths[f"{label} model"])
    paths["chains"] = os.path.join(args.out, "shaped_chains.png")
    save_scatter_panels(panels, titles, paths["chains"], limits=(0.0, 1.0))
    for name, p in paths.items():
        print(f"  {name:>16}: {p}")
    return 0
