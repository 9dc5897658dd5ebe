"""Does walk-back (k = 4) bring the chain's stationary distribution closer to the data than
one-step training (k = 1) at equal epochs? Measured exactly on tiny binary DAEs.

For each setting, four data sets of random binary patterns (optionally with bits flipped at
random, so the data spread around each pattern); a DAE trained on each with k = 1 and k = 4
(same seed, epochs, optimizer); then KL(data || stationary distribution of the chain),
computed exactly over all 2^D states with wb.exact.

    python benchmarks/walkback_kl.py [--quick]
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
SETTINGS = [
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


def data_set(seed, d, patterns, flip, rows=400):
    rng = np.random.default_rng(seed)
    pats = rng.random((patterns, d)) < 0.5
    x = np.repeat(pats, rows // patterns, axis=0)
    return np.where(rng.random(x.shape) < flip, ~x, x).astype(np.float64)


def kl_after_training(x, k, noise, epochs, hidden, seed):
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
    return wb.exact.kl(x, m)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the first two settings, two data sets")
    args = ap.parse_args()
    settings, seeds = (SETTINGS[:2], range(2)) if args.quick else (SETTINGS, range(4))
    rows = []
    for d, pats, noise, epochs, hidden, flip in settings:
        kl = {k: [] for k in (1, 4)}
        for s in seeds:
            x = data_set(s, d, pats, flip)
            for k in kl:
                kl[k].append(kl_after_training(x, k, noise, epochs, hidden, s))
        wins = sum(a < b for a, b in zip(kl[4], kl[1], strict=True))
        rows.append(
            [
                d,
                pats,
                flip,
                noise,
                epochs,
                hidden,
                " ".join(f"{v:.2f}" for v in kl[1]),
                " ".join(f"{v:.2f}" for v in kl[4]),
                f"{wins} of {len(kl[1])}",
            ]
        )
        print(rows[-1], flush=True)
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
                "k = 4 lower",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
