"""Does walk-back (k = 4) bring the chain's stationary distribution closer to the data than
one-step training (k = 1) at equal epochs? Measured exactly on tiny binary DAEs.

For each setting, data sets of random binary patterns (optionally with bits flipped at
random, so the data spread around each pattern); a DAE trained on each with k = 1 and k = 4
(same seed, epochs, optimizer); then KL(data || stationary distribution of the chain),
computed exactly over all 2^D states with wb.exact, and the chain's mass on the data's states.

    python benchmarks/walkback_kl.py [--quick] [--grid d10|d16] [--seeds 0:4]

The D = 10 grid is the one first recorded in RESULTS.md; the D = 16 grid (65,536 states, about
10 s per exact evaluation) has room for more patterns.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import walkback as wb

from _common import markdown_table

# (D, patterns, training corruption, epochs, hidden units, bit-flip rate of the data)
GRIDS = {}
GRIDS["d10"] = [
    (10, 4, 0.1, 5, 32, 0.0),
    (10, 4, 0.1, 10, 32, 0.0),
    (10, 4, 0.1, 60, 32, 0.0),
    (10, 4, 0.1, 200, 32, 0.0),
    (10, 4, 0.05, 60, 32, 0.0),
    (10, 4, 0.02, 60, 32, 0.0),
    (10, 4, 0.05, 60, 64, 0.0),
    (10, 8, 0.05, 60, 32, 0.0),
    (10, 4, 0.1, 30, 32, 0.05),
    (10, 4, 0.2, 30, 32, 0.05),
    (10, 4, 0.3, 30, 32, 0.05),
    (10, 4, 0.1, 30, 32, 0.1),
]
GRIDS["d16"] = [
    (16, 4, 0.1, 60, 32, 0.0),
    (16, 4, 0.05, 60, 32, 0.0),
    (16, 4, 0.2, 60, 32, 0.0),
    (16, 8, 0.1, 60, 32, 0.0),
    (16, 8, 0.1, 60, 64, 0.0),
    (16, 16, 0.1, 60, 64, 0.0),
    (16, 4, 0.1, 60, 32, 0.05),
]


def data_set(seed, d, patterns, flip, rows=400):
    rng = np.random.default_rng(seed)
    pats = rng.random((patterns, d)) < 0.5
    x = np.repeat(pats, rows // patterns, axis=0)
    return np.where(rng.random(x.shape) < flip, ~x, x).astype(np.float64)


def kl_after_training(x, k, noise, epochs, hidden, seed):
    """KL(data || pi), pi's mass on the data's states and its spurious modes (local maxima that
    are not data states), after training with k walk-backs."""
    m = wb.DAE(x.shape[1], hidden, corruption=wb.SaltAndPepper(noise), seed=seed, dtype=np.float64)
    m.fit(
        x,
        walkbacks=k,
        epochs=epochs,
        batch_size=20,
        optimizer=wb.Adam(0.01),
        progress=False,
        seed=seed,
    )
    pi = wb.exact.stationary_distribution(m)
    index = wb.exact.state_index(x)
    p = np.bincount(index, minlength=len(pi)) / len(x)
    on = p > 0
    spurious = int(np.sum(~on[wb.exact.local_maxima(pi)]))
    return float(np.sum(p[on] * np.log(p[on] / pi[on]))), float(pi[on].sum()), spurious


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the first two settings, two data sets")
    ap.add_argument("--grid", choices=sorted(GRIDS), default="d10")
    ap.add_argument("--seeds", default="0:4", help="data-set seeds, first:last+1")
    ap.add_argument("--settings", help="rows of the grid to run, e.g. 0,2 (default: all)")
    args = ap.parse_args()
    first, last = (int(v) for v in args.seeds.split(":"))
    settings, seeds = GRIDS[args.grid], range(first, last)
    if args.settings:
        settings = [settings[int(i)] for i in args.settings.split(",")]
    if args.quick:
        settings, seeds = settings[:2], range(first, first + 2)
    rows = []
    for d, pats, noise, epochs, hidden, flip in settings:
        kl = {k: [] for k in (1, 4)}
        mass = {k: [] for k in (1, 4)}
        spurious = {k: 0 for k in (1, 4)}
        for s in seeds:
            x = data_set(s, d, pats, flip)
            for k in kl:
                a, b, c = kl_after_training(x, k, noise, epochs, hidden, s)
                kl[k].append(a)
                mass[k].append(b)
                spurious[k] += c
        wins = sum(a < b for a, b in zip(kl[4], kl[1], strict=True))
        rows.append(
            [d, pats, flip, noise, epochs, hidden]
            + [" ".join(f"{v:.2f}" for v in kl[k]) for k in (1, 4)]
            + [f"{np.mean(kl[k]):.3f}" for k in (1, 4)]
            + [f"{np.mean(mass[k]):.2f}" for k in (1, 4)]
            + [f"{spurious[k]}" for k in (1, 4)]
            + [f"{wins} of {len(kl[1])}"]
        )
        print(rows[-1], flush=True)
    print(f"data-set seeds {first}-{last - 1}")
    print(
        markdown_table(
            [
                "D",
                "patterns",
                "bit flips",
                "corruption",
                "epochs",
                "hidden",
                "KL, k = 1",
                "KL, k = 4",
                "mean, k = 1",
                "mean, k = 4",
                "mass on data, k = 1",
                "mass on data, k = 4",
                "spurious modes, k = 1",
                "spurious modes, k = 4",
                "k = 4 lower",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
