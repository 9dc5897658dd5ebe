"""The sequence GSN (wb.SequenceGSN, issue 8), two measurements on the offline HMM task
(wb.data.make_hmm_sequences: a sticky 8-state HMM, 21 letters + a noisy 21-value profile):

--speed     training sequences/s of walkback (loss_and_grad + Adam) against the same model,
            step for step, in PyTorch eager (F.conv1d, conv_transpose1d, autograd, Adam).
--accuracy  per-position test accuracy of the GSN's chain, of the same network run once
            without chain or noise, and of a windowed MLP (scikit-learn, width 15), each
            also as a fraction of the Bayes ceiling (forward-backward posterior marginals).

    python benchmarks/sequence.py --speed [--quick]
    python benchmarks/sequence.py --accuracy [--train 2000 --test 500 --epochs 10 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import walkback as wb

from _common import markdown_table, print_header, race, save_rows, torch_peer

CIN, K = 42, 8


def torch_runner(torch, m, x, y, lens, k):
    """m's walk-back training step in PyTorch eager, on the same batch, Adam(1e-3)."""
    F = torch.nn.functional
    c1, c2 = m.channels
    w, pool, sd, corr = m.width, m.pool, m.noise, m.corruption
    p = m.get_params()
    cx = CIN + K
    # Ours: W (width * C_in, C_out), row k * C_in + c. PyTorch: (C_out, C_in, width).
    w1 = torch.tensor(p["W1"].reshape(w, cx, c1).transpose(2, 1, 0).copy(), requires_grad=True)
    w2 = torch.tensor(p["W2"].reshape(w, c1, c2).transpose(2, 1, 0).copy(), requires_grad=True)
    b1 = torch.tensor(p["b1"], requires_grad=True)
    b2 = torch.tensor(p["b2"], requires_grad=True)
    c = torch.tensor(p["c"], requires_grad=True)
    opt = torch.optim.Adam([w1, w2, b1, b2, c], lr=1e-3)
    n, length = y.shape
    l2 = (length + pool - 1) // pool
    xt = torch.tensor(x).permute(0, 2, 1)
    target = torch.tensor(y, dtype=torch.long)
    mask = (torch.arange(length)[None, :] < torch.tensor(lens)[:, None]).float()[:, None, :]
    lens2 = (torch.tensor(lens) + pool - 1) // pool
    mask2 = (torch.arange(l2)[None, :] < lens2[:, None]).float()[:, None, :]
    y0 = F.one_hot(target.clamp(min=0), K).permute(0, 2, 1).float() * mask
    valid = float(mask.sum())

    def run():
        yc_state, h2, total = y0, None, 0.0
        for _ in range(k):
            u = torch.rand(yc_state.shape)
            yc = torch.where(u < corr, (u >= corr / 2).float(), yc_state) * mask
            a1 = F.conv1d(torch.cat([xt, yc], 1), w1, b1, padding=w // 2) * mask
            if h2 is not None:
                td = F.conv_transpose1d(h2, w2, padding=w // 2)
                a1 = a1 + td.repeat_interleave(pool, 2)[:, :, :length] / pool * mask
            y1 = torch.tanh(a1 + sd * torch.randn(a1.shape))
            h1 = (y1 + sd * torch.randn(a1.shape)) * mask
            pooled = F.avg_pool1d(F.pad(h1, (0, l2 * pool - length)), pool)
            a2 = F.conv1d(pooled, w2, b2, padding=w // 2)
            h2 = (torch.tanh(a2 + sd * torch.randn(a2.shape)) + sd * torch.randn(a2.shape)) * mask2
            logits = F.conv_transpose1d(h1, w1[:, CIN:, :], padding=w // 2) + c[None, :, None]
            total = (
                total + F.cross_entropy(logits, target, ignore_index=-1, reduction="sum") / valid
            )
            with torch.no_grad():
                cdf = torch.softmax(logits, 1).cumsum(1)
                pick = (cdf < torch.rand(n, 1, length)).sum(1).clamp(max=K - 1)
                yc_state = F.one_hot(pick, K).permute(0, 2, 1).float() * mask
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    return run


def walkback_runner(m, x, y, lens, k):
    opt = wb.Adam(1e-3)
    seeds = iter(range(10**9))

    def run():
        _, g = m.loss_and_grad(x, y, lens, walkbacks=k, seed=next(seeds))
        opt.step(m._params, g)

    return run


def speed(args):
    torch = torch_peer()
    print_header(torch, wb, np)
    d = wb.data.make_hmm_sequences(16, min_length=150, max_length=250, seed=0)
    configs = [(64, 4)] if args.quick else [(64, 4), (128, 4), (128, 12)]
    rows, records = [], []
    for ch, k in configs:
        m = wb.SequenceGSN(CIN, K, channels=(ch, ch), walkbacks=k, seed=0)
        peers = {"walkback": walkback_runner(m, d.x, d.y, d.lengths, k)}
        if torch is not None:
            peers["torch"] = torch_runner(torch, m, d.x, d.y, d.lengths, k)
        best = race(peers, args.rounds, min_time=1.0)
        n = len(d.x)
        rec = dict(
            channels=ch,
            walkbacks=k,
            batch=n,
            positions=int(d.lengths.sum()),
            walkback=n / best["walkback"],
            torch=n / best["torch"] if torch is not None else None,
        )
        records.append(rec)
        rows.append(
            [
                ch,
                k,
                f"{rec['walkback']:.1f}",
                "-" if rec["torch"] is None else f"{rec['torch']:.1f}",
                "-" if rec["torch"] is None else f"{rec['walkback'] / rec['torch']:.2f}",
            ]
        )
        print(rows[-1], flush=True)
    print(
        markdown_table(
            ["C1 = C2", "walkback steps", "walkback seq/s", "torch seq/s", "walkback / torch"], rows
        )
    )
    if args.json:
        save_rows(args.json, records)


def windows(x, lengths, width):
    """Each valid position's features: x over a window of `width` positions (zero outside)."""
    half = width // 2
    n, length, c = x.shape
    pad = np.zeros((n, length + 2 * half, c), x.dtype)
    pad[:, half : half + length] = x
    for i, m in enumerate(lengths):
        pad[i, half + m :] = 0
    idx = np.arange(length)[:, None] + np.arange(width)[None, :]
    feats = pad[:, idx].reshape(n, length, width * c)
    valid = np.arange(length)[None, :] < lengths[:, None]
    return feats[valid]


def accuracy(args):
    from sklearn.neural_network import MLPClassifier

    d = wb.data.make_hmm_sequences(args.train + args.test, seed=args.seed)
    tr, te = slice(0, args.train), slice(args.train, None)
    ok = d.y[te] >= 0
    t0 = time.perf_counter()
    post = d.posterior_marginals()[te]
    bayes = float(np.mean(post.argmax(2)[ok] == d.y[te][ok]))
    print(f"Bayes ceiling (forward-backward): {bayes:.4f} ({time.perf_counter() - t0:.0f} s)")
    m = wb.SequenceGSN(
        CIN,
        K,
        channels=(args.channels, args.channels),
        walkbacks=args.walkbacks,
        noise=args.noise,
        seed=0,
    )
    t0 = time.perf_counter()
    m.fit(d.x[tr], d.y[tr], epochs=args.epochs, batch_size=16, progress=True, seed=1)
    fit_s = time.perf_counter() - t0
    chain = m.predict_proba(d.x[te], d.lengths[te], steps=args.steps, seed=0)
    single = m.single_pass_proba(d.x[te], d.lengths[te])
    acc_chain = float(np.mean(chain.argmax(2)[ok] == d.y[te][ok]))
    acc_single = float(np.mean(single.argmax(2)[ok] == d.y[te][ok]))
    rng = np.random.default_rng(0)
    ftr = windows(d.x[tr], d.lengths[tr], 15)
    ytr = d.y[tr][d.y[tr] >= 0]
    keep = rng.permutation(len(ftr))[: args.mlp_rows]
    mlp = MLPClassifier(hidden_layer_sizes=(args.channels,), max_iter=args.mlp_iter, random_state=0)
    t0 = time.perf_counter()
    mlp.fit(ftr[keep], ytr[keep])
    mlp_s = time.perf_counter() - t0
    acc_mlp = float(np.mean(mlp.predict(windows(d.x[te], d.lengths[te], 15)) == d.y[te][ok]))
    rows = [
        ["sequence GSN, chain", f"{acc_chain:.4f}", f"{acc_chain / bayes:.3f}", f"{fit_s:.0f}"],
        ["same network, one pass", f"{acc_single:.4f}", f"{acc_single / bayes:.3f}", "-"],
        ["windowed MLP (15)", f"{acc_mlp:.4f}", f"{acc_mlp / bayes:.3f}", f"{mlp_s:.0f}"],
        ["Bayes (forward-backward)", f"{bayes:.4f}", "1.000", "-"],
    ]
    print(markdown_table(["labeller", "accuracy", "of Bayes", "train s"], rows))
    if args.json:
        save_rows(
            args.json,
            [
                dict(zip(["labeller", "accuracy", "of_bayes", "train_s"], r, strict=True))
                for r in rows
            ],
            config=vars(args),
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--walkbacks", type=int, default=6)
    ap.add_argument("--noise", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=None, help="prediction chain steps")
    ap.add_argument("--mlp-rows", type=int, default=100_000)
    ap.add_argument("--mlp-iter", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not (args.speed or args.accuracy):
        ap.error("choose --speed and/or --accuracy")
    if args.speed:
        speed(args)
    if args.accuracy:
        accuracy(args)


if __name__ == "__main__":
    main()
