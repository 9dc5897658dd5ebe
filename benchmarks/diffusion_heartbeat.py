"""The diffusion paper's binary heartbeat (Sohl-Dickstein et al. 2015, appendix; table 1):
sequences of 20 bits with a 1 every 5th bin at one of 5 equally likely phases, so the true
log-likelihood is -log2(5) = -2.322 bits per sequence (the paper's bound reached -2.414).
A binomial diffusion with T = 2000 is trained (Adam, the learning rate stepped down twice) and
its bound K is evaluated on held-out sequences summing the KL over every t (t="all").

    python benchmarks/diffusion_heartbeat.py [--epochs 400] [--hidden 512 512 512] [--basis 20]

Takes about 18 minutes on two cores with the defaults; prints K after every block of epochs
and whether it is within 0.15 bits of the true value. Measured so far (RESULTS.md): 20-512-512
with J = 10, 100 epochs: -2.55 bits; 512 x 3 with J = 20: -2.497 (100 epochs), -2.479 (200).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import walkback as wb

from _common import machine

TRUE_BITS = -math.log2(5)
PAPER_BITS = -2.414


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=400, help="passes over the 50,000 sequences")
    ap.add_argument("--hidden", type=int, nargs="+", default=[512, 512, 512])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--basis", type=int, default=20, help="temporal basis functions J")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--json", default=os.path.join(os.path.dirname(__file__), "diffusion_heartbeat.json")
    )
    args = ap.parse_args()
    x = wb.data.make_heartbeat(50_000, seed=args.seed)
    test = wb.data.make_heartbeat(200, seed=args.seed + 1)
    model = wb.Diffusion(
        20,
        steps=args.steps,
        kind="binomial",
        hidden=tuple(args.hidden),
        basis=args.basis,
        seed=args.seed,
    )
    print(f"machine: {machine()}; {model}")
    opt = wb.Adam(lr=1e-3)
    block = 5
    t0 = time.perf_counter()
    history = []
    for b in range(max(1, args.epochs // block)):
        frac = b / max(1, args.epochs // block)
        opt.lr = 1e-3 if frac < 0.4 else (3e-4 if frac < 0.8 else 1e-4)
        h = model.fit(
            x, epochs=block, batch_size=512, optimizer=opt, progress=False, seed=args.seed + b
        )
        r = model.log_likelihood_bound(test, t="all", seed=1)
        history.append(dict(epochs=(b + 1) * block, loss=h.train_loss[-1], bits=r.bits))
        print(
            f"  epochs {(b + 1) * block:4d}  {time.perf_counter() - t0:6.0f} s  lr {opt.lr:g}  "
            f"K = {r.bits:.3f} +- {r.nats_se / math.log(2):.3f} bits",
            flush=True,
        )
    gap = TRUE_BITS - r.bits
    print(
        f"K = {r.bits:.3f} bits per sequence; true log-likelihood {TRUE_BITS:.3f}; the paper's "
        f"bound {PAPER_BITS}; gap {gap:.3f} bits ({'within' if gap <= 0.15 else 'NOT within'} "
        f"0.15); K - L_null = {r.improvement_bits:.3f} bits"
    )
    with open(args.json, "w") as f:
        json.dump(
            dict(
                machine=machine(),
                hidden=args.hidden,
                steps=args.steps,
                history=history,
                bits=r.bits,
                se_bits=r.nats_se / math.log(2),
                gap=gap,
                minutes=(time.perf_counter() - t0) / 60,
            ),
            f,
            indent=2,
        )


if __name__ == "__main__":
    main()
