"""The ABC-shaped chain (wb.ShapedChain, issue 8 part 2), two measurements:

--speed    training examples/s (one shaping step, as fit takes it: the generator's chain with
           its loss, gradients and Adam step, and the guide's) against the same model, step
           for step, in PyTorch eager (autograd, clip_grad_norm_, torch.optim.Adam).
--mixture  on a 2-D mixture of 8 Gaussians, the fraction of chain samples (50 steps from the
           prior) more than 3 sigma from every component, shaped against unshaped, over seeds
           (paired: seed s trains both from the same start).

    python benchmarks/shaped.py --speed [--quick]
    python benchmarks/shaped.py --mixture [--seeds 8] [--steps 6,50,500] [--kld 0.05]
                                    [--shaping 0.25,0.5]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import walkback as wb
from walkback.demo_shaped import fit_ring_chain, ring_chain

from _common import markdown_table, print_header, race, save_rows, torch_peer


def torch_runner(torch, m, x):
    """m's shaping-phase training step in PyTorch eager, on the same batch."""
    F = torch.nn.functional
    p = {k: torch.tensor(v, requires_grad=True) for k, v in m.get_params().items()}

    def net(prefix, h, layers):
        for i in range(layers):
            h = torch.relu(h @ p[f"{prefix}_W{i}"] + p[f"{prefix}_b{i}"])
        return h @ p[f"{prefix}_Whead"] + p[f"{prefix}_bhead"]

    gen = [v for k, v in p.items() if not k.startswith("guide")]
    gui = [v for k, v in p.items() if k.startswith("guide")]
    opt_g, opt_d = torch.optim.Adam(gen, lr=1e-3), torch.optim.Adam(gui, lr=1e-3)
    data = torch.tensor(x)
    nh, ng, z_dim = len(m.hidden), len(m.guide_hidden), m.latent
    b = len(x)

    def run():
        xi, loss, states = data, 0.0, []
        for i in range(m.chain_len):
            e = net("enc", xi, nh)
            mu, lv = e[:, :z_dim], e[:, z_dim:]
            z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            o = net("dec", z, nh)
            w = m.decay**i
            loss = loss + w * F.binary_cross_entropy_with_logits(o, data, reduction="sum") / b
            loss = loss + w * m.kld * 0.5 * (mu**2 + lv.exp() - 1 - lv).sum() / b
            xi = torch.sigmoid(o)
            states.append(xi)
        # One pass of the guide over the data and every chain state serves the shaping term
        # and the guide's own loss, as walkback's step does; each loss's gradients are taken
        # for its own network only.
        out = net("guide", torch.cat([data] + states), ng).squeeze(1)
        r = torch.relu(-out[b:])
        loss = loss + m.shaping * (r + r * r).sum() / (2 * b)
        dl = F.softplus(-out[:b]).mean() + F.softplus(out[b:]).mean()
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        loss.backward(inputs=gen, retain_graph=True)
        dl.backward(inputs=gui)
        torch.nn.utils.clip_grad_norm_(gen, 10.0)
        opt_g.step()
        torch.nn.utils.clip_grad_norm_(gui, 10.0)
        opt_d.step()

    return run


def walkback_runner(m, x):
    """fit's shaping-phase step: both networks' gradients from one call (loss_and_grads shares
    the guide's forward pass) into gradient arrays kept across batches, then each network's
    clipped Adam step, which also writes fit's backup of the parameters."""
    opt_g, opt_d = wb.Adam(1e-3), wb.Adam(1e-3)
    seeds = iter(range(10**9))
    guide = [k for k in m.get_params() if k.startswith("guide")]
    gen = [k for k in m.get_params() if not k.startswith("guide")]
    # fit's backup of the parameters, written by the optimizers in their pass.
    backups = [{k: v.copy() for k, v in m.get_params().items()} for _ in range(2)]
    steps = iter(range(10**9))
    # fit's gradients, kept across batches (as loss_and_grads's numbers, into fit's buffers).
    grads = {k: np.empty_like(v) for k, v in m.get_params().items()}

    def run():
        parts, g, _ = m._generator_call(
            x, m.chain_len, m.shaping, next(seeds), False, True, out=grads
        )
        backup = backups[next(steps) % 2]
        opt_d.step(
            {k: m._params[k] for k in guide},
            {k: g[k] for k in guide},
            max_grad_norm=10.0,
            backup=backup,
        )
        opt_g.step(
            {k: m._params[k] for k in gen},
            {k: g[k] for k in gen},
            max_grad_norm=10.0,
            backup=backup,
        )

    return run


def speed(args):
    torch = torch_peer()
    print_header(torch, wb, np)
    rng = np.random.default_rng(0)
    configs = (
        [(100, (500, 500), 3)] if args.quick else [(100, (500, 500), 3), (100, (1000, 1000), 6)]
    )
    rows, records = [], []
    for b, hidden, chain in configs:
        x = rng.random((b, 784)).astype(np.float32)
        m = wb.ShapedChain(
            784, latent=50, hidden=hidden, guide_hidden=(500,), chain_len=chain, seed=0
        )
        peers = {"walkback": walkback_runner(m, x)}
        if torch is not None:
            peers["torch"] = torch_runner(torch, m, x)
        best = race(peers, args.rounds, min_time=1.0)
        rec = dict(
            batch=b,
            hidden=list(hidden),
            chain_len=chain,
            walkback=b / best["walkback"],
            torch=b / best["torch"] if torch is not None else None,
        )
        records.append(rec)
        ratio = "-" if rec["torch"] is None else f"{rec['walkback'] / rec['torch']:.2f}"
        rows.append(
            [
                b,
                "x".join(map(str, hidden)),
                chain,
                f"{rec['walkback']:.0f}",
                "-" if rec["torch"] is None else f"{rec['torch']:.0f}",
                ratio,
            ]
        )
        print(rows[-1], flush=True)
    print(
        markdown_table(
            ["batch", "hidden", "chain_len", "walkback ex/s", "torch ex/s", "walkback / torch"],
            rows,
        )
    )
    if args.json:
        save_rows(args.json, records)


def mixture(args):
    k, sigma = 8, 0.03
    x, centers = wb.data.make_ring_mixture(4000, k, sigma, seed=0)
    lengths = sorted({int(v) for v in args.steps.split(",")})
    weights = [0.0] + [float(v) for v in args.shaping.split(",") if float(v) != 0.0]
    # res[shaping][steps]: one (far fraction, components holding >= 1% of the states) per seed
    res = {s: {n: [] for n in lengths} for s in weights}
    for seed in range(args.seeds):
        for shaping in res:
            m = ring_chain(shaping, seed, kld=args.kld)  # the demo's model and training
            fit_ring_chain(m, x, args.epochs, seed + 100)
            chain = m.sample(4000, steps=lengths[-1], every=1, seed=seed)
            for n in lengths:
                d = np.sqrt(((chain[n - 1][:, None, :] - centers[None]) ** 2).sum(-1))
                far = float(np.mean(d.min(1) > 3 * sigma))
                counts = np.bincount(d.argmin(1), minlength=k)
                covered = int(np.sum(counts >= 0.01 * len(d)))
                res[shaping][n].append((far, covered))
                print(
                    f"kld {args.kld} seed {seed} shaping {shaping} steps {n}: far {far:.3f}, "
                    f"components with >= 1% {covered}",
                    flush=True,
                )
    rows = []
    for shaping, by_len in res.items():
        for n, v in by_len.items():
            far = np.array([a for a, _ in v])
            base = np.array([a for a, _ in res[0.0][n]])
            # paired by seed: the same data, initial weights and batch order as the unshaped run
            vs = "-" if shaping == 0.0 else f"{np.sum(far < base)} / {np.sum(far > base)}"
            rows.append(
                [
                    shaping,
                    n,
                    f"{far.mean():.3f} +- {far.std(ddof=1) / np.sqrt(len(far)):.3f}",
                    " ".join(f"{a:.3f}" for a in far),
                    " ".join(str(b) for _, b in v),
                    vs,
                ]
            )
    print(f"KL weight {args.kld}, {args.epochs} + {args.epochs} epochs, {args.seeds} seeds")
    print(
        markdown_table(
            [
                "shaping",
                "chain steps",
                "far from every component (mean +- se)",
                "per seed",
                "components with >= 1% (of 8), per seed",
                "seeds below / above unshaped",
            ],
            rows,
        )
    )
    if args.json:
        save_rows(
            args.json,
            [
                dict(shaping=s, steps=n, far=[a for a, _ in v], covered=[b for _, b in v])
                for s, by_len in res.items()
                for n, v in by_len.items()
            ],
            config=vars(args),
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--mixture", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument(
        "--shaping", default="0.5", help="shaping weights to compare with 0, comma-separated"
    )
    ap.add_argument("--kld", type=float, default=0.05, help="the KL term's weight")
    ap.add_argument(
        "--steps", default="50", help="chain lengths to measure, comma-separated (e.g. 6,50,500)"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not (args.speed or args.mixture):
        ap.error("choose --speed and/or --mixture")
    if args.speed:
        speed(args)
    if args.mixture:
        mixture(args)


if __name__ == "__main__":
    main()
